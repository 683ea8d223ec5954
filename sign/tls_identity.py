"""TLS identities for mutual TLS with the broker: who gets one, which CA issues it, and
its PEM and PKCS#12 forms. The files live where :class:`schemas.tls_layout.TlsLayout`
says; :class:`sign.keystore.KeyStore` writes them.

Certificate profile (Ed25519 key of its own, never an agency's signing key):

* subject ``C=CN, O=ZF801, OU=<role>, CN=<name>``, in RFC 2253
  ``CN=<name>,OU=<role>,O=ZF801,C=CN``: the broker's principal is ``User:<that string>``
  until ``ssl.principal.mapping.rules`` reduce it to ``User:<name>``;
* extendedKeyUsage clientAuth; a broker node also serverAuth and a SAN of
  IP 127.0.0.1, IP ::1 and DNS localhost (what the local cluster's clients connect to);
* basicConstraints CA:FALSE and keyUsage digitalSignature, both critical;
* issued by the issuing CA of the role's side (:data:`schemas.tls_layout.SIDE_OF_ROLE`):
  court, police or bus; broker nodes (role ``broker``) and the admin (role ``admin``) by
  the bus CA. A listener of one side trusts that side's CA only, so a police certificate
  cannot pass for a court whatever its subject says.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import pkcs12

from schemas.tls_layout import ADMIN_NAME, SIDE_OF_ROLE, Side, node_name
from sign.ca import new_key
from sign.errors import TrustMaterialError
from sign.trustset import TrustSet

__all__ = [
    "ADMIN_ROLE",
    "BROKER_NODE_IDS",
    "BROKER_ROLE",
    "TlsHolder",
    "TlsIdentity",
    "infrastructure_holders",
    "issue_tls_identity",
    "tls_issuer_side",
]

BROKER_ROLE: Final = "broker"
ADMIN_ROLE: Final = "admin"
BROKER_NODE_IDS: Final[tuple[int, ...]] = (1, 2, 3)
"""The nodes of the local cluster (``zf801 broker start --nodes 3``); one node uses node 1."""
_LOCAL_SERVER_NAMES: Final[tuple[x509.GeneralName, ...]] = (
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
    x509.DNSName("localhost"),
)


def tls_issuer_side(role: str) -> Side:
    """The issuing CA (and listener) of a role: ``court``, ``police`` or ``bus``."""
    if role in (BROKER_ROLE, ADMIN_ROLE):
        return "bus"
    side = SIDE_OF_ROLE.get(role)
    if side is None:
        raise TrustMaterialError(f"role {role!r}: no issuing CA certifies a TLS identity for it")
    return side


@dataclass(frozen=True, slots=True)
class TlsHolder:
    """Who holds a TLS identity: an agency, the admin, or a broker node (``node_id``)."""

    name: str
    role: str
    node_id: int | None = None


def infrastructure_holders() -> list[TlsHolder]:
    """The admin and the broker nodes: TLS identities that are not agencies."""
    nodes = [TlsHolder(node_name(i), BROKER_ROLE, i) for i in BROKER_NODE_IDS]
    return [TlsHolder(ADMIN_NAME, ADMIN_ROLE), *nodes]


@dataclass(frozen=True, slots=True)
class TlsIdentity:
    """A TLS private key, its certificate and the certificate of the CA that issued it."""

    key: Ed25519PrivateKey
    certificate: x509.Certificate
    issuer: x509.Certificate

    def chain_pem(self) -> bytes:
        """Leaf then issuing CA: the broker refuses a bare leaf."""
        return b"".join(
            cert.public_bytes(serialization.Encoding.PEM)
            for cert in (self.certificate, self.issuer)
        )

    def key_pem(self, passphrase: bytes) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )

    def pkcs12(self, name: str, passphrase: bytes) -> bytes:
        """Key, leaf and issuing CA as a PKCS#12 keystore: Kafka 4.1 cannot load an Ed25519
        key from PEM, but loads this."""
        return pkcs12.serialize_key_and_certificates(
            name.encode("utf-8"),
            self.key,
            self.certificate,
            [self.issuer],
            serialization.BestAvailableEncryption(passphrase),
        )


def issue_tls_identity(
    trust_set: TrustSet, holder: TlsHolder, *, now: datetime, lifetime: timedelta
) -> TlsIdentity:
    """A fresh key and TLS certificate for ``holder`` from its side's issuing CA."""
    issuer = trust_set.issuers[tls_issuer_side(holder.role)]
    key = new_key()
    certificate = issuer.issue_tls(
        holder.name,
        holder.role,
        public_key=key.public_key(),
        now=now,
        lifetime=lifetime,
        server_names=_LOCAL_SERVER_NAMES if holder.node_id is not None else (),
    )
    return TlsIdentity(key, certificate, issuer.certificate)
