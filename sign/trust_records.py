"""Trust material as bus events: TrustCertificate and TrustRevocation records.

Certificates and revocations (never private keys) travel on the compacted ``trust`` topic
(catalog id ``trust``) as signed events (``cn.zf801.bus.v1.TrustCertificate`` /
``TrustRevocation``), written by a ``bus``-role agency.

Record keys: a certificate is keyed by its key id; a revocation by ``<key id>/revocation``.
Why not the bare key id for both: the topic is compacted, and compaction keeps only the
latest record per key, so a revocation keyed like its certificate would erase the
certificate, and a processor that starts later could no longer verify the events that key
signed *before* its revocation, which must stay valid.

Only agency certificates travel here (the schema's ``agency_code`` is an agency). The
roots and issuing CAs are local configuration of every verifier (``keys/anchors`` and
``keys/ca/*.cert.pem``), so the topic can add agencies but never new authorities.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from schemas.codec import Codec
from schemas.envelope import KafkaRecord
from sign.errors import TrustMaterialError
from sign.events import EventSigner
from sign.identity import identity_of
from sign.trust import Revocation

__all__ = [
    "CERTIFICATE_SCHEMA",
    "REVOCATION_SCHEMA",
    "TrustItem",
    "certificate_event",
    "parse_trust_value",
    "revocation_event",
]

CERTIFICATE_SCHEMA = "cn.zf801.bus.v1.TrustCertificate"
REVOCATION_SCHEMA = "cn.zf801.bus.v1.TrustRevocation"
_REVOCATION_KEY_SUFFIX = "/revocation"


@dataclass(frozen=True, slots=True)
class TrustItem:
    """A decoded trust record: exactly one of ``certificate`` / ``revocation``."""

    certificate: x509.Certificate | None = None
    revocation: Revocation | None = None


def _enum(text: str) -> str:
    return text.upper().replace("-", "_")


def _text(symbol: str) -> str:
    return symbol.lower().replace("_", "-")


def certificate_event(
    certificate: x509.Certificate,
    signer: EventSigner,
    published_at: datetime,
    codec: Codec | None = None,
) -> KafkaRecord:
    """A signed TrustCertificate record, keyed by the certificate's key id."""
    identity = identity_of(certificate)
    value = {
        "key_id": identity.key_id,
        "agency_code": identity.agency_code,
        "role": _enum(identity.role),
        "certificate_der": certificate.public_bytes(Encoding.DER),
        "not_before": identity.not_before,
        "not_after": identity.not_after,
        "published_at": published_at,
    }
    return _signed(
        CERTIFICATE_SCHEMA,
        value,
        identity.key_id,
        signer=signer,
        published_at=published_at,
        codec=codec,
    )


def revocation_event(
    revocation: Revocation,
    signer: EventSigner,
    published_at: datetime,
    codec: Codec | None = None,
) -> KafkaRecord:
    """A signed TrustRevocation record, keyed ``<key id>/revocation``."""
    value = {
        "key_id": revocation.key_id,
        "revoked_at": revocation.revoked_at,
        "reason": _enum(revocation.reason),
        "detail": None,
        "revoked_by": revocation.revoked_by,
        "published_at": published_at,
    }
    key = revocation.key_id + _REVOCATION_KEY_SUFFIX
    return _signed(
        REVOCATION_SCHEMA, value, key, signer=signer, published_at=published_at, codec=codec
    )


def _signed(
    schema: str,
    value: dict[str, Any],
    key: str,
    *,
    signer: EventSigner,
    published_at: datetime,
    codec: Codec | None,
) -> KafkaRecord:
    return signer.signed_record(
        schema, value, key=key.encode("ascii"), time=published_at, codec=codec
    )


def parse_trust_value(schema_name: str, record: dict[str, Any], recorded_at: datetime) -> TrustItem:
    """Turn a decoded trust record into a certificate or a revocation."""
    if schema_name == CERTIFICATE_SCHEMA:
        try:
            certificate = x509.load_der_x509_certificate(record["certificate_der"])
        except ValueError as exc:
            raise TrustMaterialError(f"certificate_der: does not parse ({exc})") from exc
        identity = identity_of(certificate)
        if identity.key_id != record["key_id"] or identity.agency_code != record["agency_code"]:
            raise TrustMaterialError(
                f"TrustCertificate {record['key_id']}: key_id/agency_code disagree with "
                f"the certificate ({identity.key_id}, {identity.agency_code})"
            )
        return TrustItem(certificate=certificate)
    if schema_name == REVOCATION_SCHEMA:
        revocation = Revocation(
            key_id=record["key_id"],
            revoked_at=record["revoked_at"],
            reason=_text(record["reason"]),
            recorded_at=recorded_at,
            revoked_by=record["revoked_by"],
        )
        return TrustItem(revocation=revocation)
    raise TrustMaterialError(f"schema {schema_name}: not a trust record")
