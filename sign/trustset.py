"""A complete set of CAs in memory: two roots and three issuing CAs, ready to certify.

Used by the on-disk key store (``zf801 keys init``), by tests and by benchmarks, so the
layout of :mod:`sign.identity` is built in one place:

* court root (SPC) -> ``court`` issuing CA (courts, the command system)
                   -> ``bus`` issuing CA (the bus's processors)
* police root (MPS) -> ``police`` issuing CA (border control, traffic, public security)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sign.ca import CertificateAuthority, new_key
from sign.errors import TrustMaterialError
from sign.trust import Revocation, TrustStore

__all__ = ["ISSUER_FOR_ROLE", "ISSUING_LIFETIME", "ROOT_LIFETIME", "TrustSet"]

ROOT_LIFETIME = timedelta(days=20 * 365)
ISSUING_LIFETIME = timedelta(days=10 * 365)
# Which issuing CA certifies which role.
ISSUER_FOR_ROLE = {
    "court": "court",
    "command-system": "court",
    "list-subscriber": "court",
    "bus": "bus",
    "border-control": "police",
    "traffic-management": "police",
    "public-security": "police",
}
_COURT_ORG = "Supreme People's Court"
_POLICE_ORG = "Ministry of Public Security"


@dataclass
class TrustSet:
    """Roots, issuing CAs, and the agency certificates issued so far."""

    roots: dict[str, CertificateAuthority]
    issuers: dict[str, CertificateAuthority]
    certificates: list[x509.Certificate] = field(default_factory=list)
    revocations: list[Revocation] = field(default_factory=list)

    @classmethod
    def create(cls, now: datetime) -> TrustSet:
        """Fresh roots for both sides and their issuing CAs."""
        court = CertificateAuthority.create_root(
            "court",
            organisation=_COURT_ORG,
            common_name="ZF801 Court Root CA",
            now=now,
            lifetime=ROOT_LIFETIME,
        )
        police = CertificateAuthority.create_root(
            "police",
            organisation=_POLICE_ORG,
            common_name="ZF801 Police Root CA",
            now=now,
            lifetime=ROOT_LIFETIME,
        )
        issuers = {
            "court": court.issue_ca(_COURT_ORG, "ZF801 Court Issuing CA", now, ISSUING_LIFETIME),
            "bus": court.issue_ca(_COURT_ORG, "ZF801 Bus Processors CA", now, ISSUING_LIFETIME),
            "police": police.issue_ca(
                _POLICE_ORG, "ZF801 Police Issuing CA", now, ISSUING_LIFETIME
            ),
        }
        return cls(roots={"court": court, "police": police}, issuers=issuers)

    def issuer_for(self, role: str) -> CertificateAuthority:
        name = ISSUER_FOR_ROLE.get(role)
        if name is None:
            raise TrustMaterialError(f"role {role!r}: no issuing CA certifies it")
        return self.issuers[name]

    def issue(
        self,
        agency_code: str,
        agency_name: str,
        role: str,
        *,
        now: datetime,
        lifetime: timedelta,
        key: Ed25519PrivateKey | None = None,
    ) -> tuple[Ed25519PrivateKey, x509.Certificate]:
        """A new key (unless given) and its certificate for an agency."""
        key = key or new_key()
        certificate = self.issuer_for(role).issue_agency(
            agency_code, agency_name, role, public_key=key.public_key(), now=now, lifetime=lifetime
        )
        self.certificates.append(certificate)
        return key, certificate

    def anchors(self) -> list[x509.Certificate]:
        return [root.certificate for root in self.roots.values()]

    def chain_certificates(self) -> list[x509.Certificate]:
        """The issuing-CA certificates (the ``-untrusted`` links of a chain)."""
        return [issuer.certificate for issuer in self.issuers.values()]

    def trust_store(self) -> TrustStore:
        return TrustStore(
            anchors=self.anchors(),
            certificates=[*self.chain_certificates(), *self.certificates],
            revocations=self.revocations,
        )
