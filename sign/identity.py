"""Who a certificate speaks for: agency code, role, side, and the key id.

Trust layout (decided here, used by :mod:`sign.ca` and :mod:`sign.chain`)
-------------------------------------------------------------------------
Two roots, one per side, and the bus trusts both anchors:

* the **court root** (held by the SPC) certifies, through its issuing CAs, every court,
  the SPC's national enforcement command system (role ``command-system``), the
  dishonest-debtor list's subscribers (role ``list-subscriber``, codes ``SUB-<name>``: the
  agencies that enforce restrictions from the list enrol with the SPC), and the bus's
  own processors (role ``bus``, agency codes ``BUS-<name>``) under a separate
  "bus processors" issuing CA;
* the **police root** (held by the MPS) certifies every police unit (roles
  ``border-control``, ``traffic-management``, ``public-security``).

Why two roots and not one shared root: each ministry keeps control of its own people's
identities, and a verifier binds each anchor to the roles it may certify
(:data:`SIDE_ROLES`), so a compromised or careless MPS CA cannot mint a court, and the
SPC cannot mint a police unit. Why the processors sit under the court root: the hits they
sign are alerts to courts on behalf of the SPC's enforcement command system, which
MISSION §2 makes the coordinator of networked enforcement; a processor never speaks for a
police unit. A third root for the processors would be a third party both ministries must
trust without adding a separation that the role binding does not already give.

Certificate profile (Ed25519 keys; chain root -> issuing CA -> agency)
----------------------------------------------------------------------
* CA subject: ``C=CN, O=<ministry>, OU=<side>, CN=<CA name>``; the root's OU is the side
  (``court`` or ``police``) that :data:`SIDE_ROLES` maps to the roles it may certify.
* Agency subject: ``C=CN, O=<agency name>, OU=<role>, CN=<agency code>``.
* Agency SAN: exactly one URI ``zf801:agency/<CODE>``; it is the authoritative agency
  identity (it equals ``ce_source`` of the events the agency signs); CN must agree.
* Role: the single OU of the agency subject (one of :data:`ROLES`). A name attribute
  rather than a private-OID extension so that ``openssl x509 -subject`` shows it and no
  OID arc has to be registered.
* Key usage: digitalSignature + contentCommitment (non-repudiation), critical;
  basicConstraints CA:FALSE, critical.

Key id: the lower-case hex of the first 16 bytes of SHA-256 over the DER
SubjectPublicKeyInfo of the public key (32 hex characters). Any language computes it
with ``openssl pkey -pubin -outform DER | openssl dgst -sha256`` and the first 32 hex
digits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from schemas.headers import SOURCE_PREFIX
from sign.errors import TrustMaterialError

__all__ = [
    "AGENCY_URI_PREFIX",
    "KEY_ID_PATTERN",
    "ROLES",
    "SIDE_ROLES",
    "AgencyIdentity",
    "agency_code_from_source",
    "agency_uri",
    "identity_of",
    "key_id_of",
    "side_of_ca",
]

AGENCY_URI_PREFIX = SOURCE_PREFIX
ROLES = frozenset(
    {
        "court",
        "border-control",
        "traffic-management",
        "public-security",
        "bus",
        "command-system",
        "list-subscriber",
    }
)
# The roles each anchor may certify; the verifier refuses a chain that breaks this.
SIDE_ROLES: dict[str, frozenset[str]] = {
    "court": frozenset({"court", "command-system", "bus", "list-subscriber"}),
    "police": frozenset({"border-control", "traffic-management", "public-security"}),
}
# The envelope's rule for the agency part of ce_source (schemas.envelope).
_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{1,31}$")


@dataclass(frozen=True, slots=True)
class AgencyIdentity:
    """What an agency certificate asserts, read once and cached with its chain."""

    agency_code: str
    role: str
    key_id: str
    not_before: datetime
    not_after: datetime


KEY_ID_PATTERN = "[0-9a-f]{32}"
"""What :func:`key_id_of` gives: 32 lower-case hex digits."""


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """Hex of the first 16 bytes of SHA-256 over the DER SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()[:16].hex()


def agency_uri(agency_code: str) -> str:
    """The ``ce_source`` / SAN URI naming an agency."""
    if not _CODE_RE.fullmatch(agency_code):
        raise TrustMaterialError(
            f"agency_code {agency_code!r}: must be 2-32 ASCII letters, digits or '-'"
        )
    return AGENCY_URI_PREFIX + agency_code


def agency_code_from_source(source: str) -> str | None:
    """The agency code in a ``zf801:agency/<CODE>`` URI, or None if it is not one."""
    if not source.startswith(AGENCY_URI_PREFIX):
        return None
    code = source[len(AGENCY_URI_PREFIX) :]
    return code if _CODE_RE.fullmatch(code) else None


def _single_attribute(name: x509.Name, oid: x509.ObjectIdentifier, label: str) -> str:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise TrustMaterialError(
            f"certificate subject {name.rfc4514_string()!r}: needs exactly one {label}, "
            f"has {len(values)}"
        )
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8")


def side_of_ca(certificate: x509.Certificate) -> str:
    """The side (``court`` / ``police``) a root names in its OU."""
    side = _single_attribute(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
    if side not in SIDE_ROLES:
        raise TrustMaterialError(f"CA OU {side!r}: must be one of {sorted(SIDE_ROLES)}")
    return side


def _agency_from_san(certificate: x509.Certificate) -> str:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound as exc:
        raise TrustMaterialError("agency certificate: has no subjectAltName") from exc
    uris = [
        uri
        for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier)
        if uri.startswith(AGENCY_URI_PREFIX)
    ]
    if len(uris) != 1:
        raise TrustMaterialError(
            f"agency certificate SAN: needs exactly one {AGENCY_URI_PREFIX}<CODE> URI, "
            f"has {len(uris)}"
        )
    code = agency_code_from_source(uris[0])
    if code is None:
        raise TrustMaterialError(f"agency certificate SAN URI {uris[0]!r}: malformed code")
    return code


def identity_of(certificate: x509.Certificate) -> AgencyIdentity:
    """Read and check the agency profile of an end-entity certificate."""
    public_key = certificate.public_key()
    if not isinstance(public_key, Ed25519PublicKey):
        raise TrustMaterialError("agency certificate: public key must be Ed25519")
    code = _agency_from_san(certificate)
    common_name = _single_attribute(certificate.subject, NameOID.COMMON_NAME, "CN")
    if common_name != code:
        raise TrustMaterialError(
            f"agency certificate: CN {common_name!r} differs from SAN agency {code!r}"
        )
    role = _single_attribute(certificate.subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
    if role not in ROLES:
        raise TrustMaterialError(f"agency certificate OU (role) {role!r}: not a known role")
    return AgencyIdentity(
        agency_code=code,
        role=role,
        key_id=key_id_of(public_key),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )
