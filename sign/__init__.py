"""Identities and trust: agency certificates under two roots (courts/bus: SPC, police: MPS),
signing and verification of events (``sign/CANONICAL.md``) and of documents (electronic
seals, ``sign/SEAL-OPENSSL.md``), key rotation and timed revocation, the trust topic
follower, replay protection and the verify-before-act stage every consumer uses."""

from sign.errors import SignatureRejected, SignError
from sign.events import EventSigner, EventVerifier, VerifiedSignature, canonical_bytes
from sign.follower import TrustFollower
from sign.keystore import KeyStore
from sign.replay import ReplayGuard, ReplayVerdict
from sign.seal import document_digest, seal_document, verify_seal
from sign.trust import Revocation, TrustStore
from sign.verify_stage import Rejection, VerifiedEvent, VerifyStage

__all__ = [
    "EventSigner",
    "EventVerifier",
    "KeyStore",
    "Rejection",
    "ReplayGuard",
    "ReplayVerdict",
    "Revocation",
    "SignError",
    "SignatureRejected",
    "TrustFollower",
    "TrustStore",
    "VerifiedEvent",
    "VerifiedSignature",
    "VerifyStage",
    "canonical_bytes",
    "document_digest",
    "seal_document",
    "verify_seal",
]
