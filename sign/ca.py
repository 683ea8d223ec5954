"""Issuing certificates: the two roots, their issuing CAs, agency signing certificates and
TLS certificates (the profile of the latter is in :mod:`sign.tls_identity`).

The layout and the certificate profile are explained in :mod:`sign.identity`. This
module only builds certificates with ``cryptography``'s X.509 builder; every key is
Ed25519 (the signature algorithm is implied by the key, so ``sign(key, None)``).
Chains are root -> issuing CA -> agency: the root can stay offline while the issuing CA
works, and the OpenSSL recipe (``sign/SEAL-OPENSSL.md``) shows an ``-untrusted`` link.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sign.errors import TrustMaterialError
from sign.identity import ROLES, SIDE_ROLES, agency_uri

__all__ = ["TLS_ORGANISATION", "CertificateAuthority", "ca_name", "new_key", "tls_name"]

TLS_ORGANISATION = "ZF801"
"""The O of every TLS certificate: the broker's principal rules match on it."""
# A few seconds of back-dating absorbs clock differences between machines.
_BACKDATE = timedelta(minutes=5)


def new_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def ca_name(side: str, organisation: str, common_name: str) -> x509.Name:
    """The subject of a CA: the OU carries the side the anchor speaks for."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, side),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _agency_name(code: str, name: str, role: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, code),
        ]
    )


def tls_name(name: str, role: str) -> x509.Name:
    """The subject of a TLS certificate, in RFC 2253 ``CN=<name>,OU=<role>,O=ZF801,C=CN``
    (RFC 2253 prints the last attribute first, so the order here is C, O, OU, CN)."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, TLS_ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _key_usage(*, sign_certs: bool, non_repudiation: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not sign_certs,
        content_commitment=not sign_certs and non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=sign_certs,
        crl_sign=sign_certs,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name,
    *,
    issuer: x509.Name,
    public_key: Ed25519PublicKey,
    issuer_public_key: Ed25519PublicKey,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    if not_after <= not_before:
        raise TrustMaterialError(f"validity: not_after {not_after} is not after {not_before}")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
            critical=False,
        )
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """A CA certificate with its private key (a root or an issuing CA)."""

    certificate: x509.Certificate
    private_key: Ed25519PrivateKey

    @classmethod
    def create_root(
        cls,
        side: str,
        *,
        organisation: str,
        common_name: str,
        now: datetime,
        lifetime: timedelta,
        key: Ed25519PrivateKey | None = None,
    ) -> CertificateAuthority:
        """A self-signed root for one side (``court`` or ``police``)."""
        if side not in SIDE_ROLES:
            raise TrustMaterialError(f"side {side!r}: must be one of {sorted(SIDE_ROLES)}")
        key = key or new_key()
        name = ca_name(side, organisation, common_name)
        builder = _builder(
            name,
            issuer=name,
            public_key=key.public_key(),
            issuer_public_key=key.public_key(),
            not_before=now - _BACKDATE,
            not_after=now + lifetime,
        ).add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        certificate = builder.add_extension(_key_usage(sign_certs=True), critical=True).sign(
            key, None
        )
        return cls(certificate, key)

    def issue_ca(
        self,
        organisation: str,
        common_name: str,
        now: datetime,
        lifetime: timedelta,
        key: Ed25519PrivateKey | None = None,
    ) -> CertificateAuthority:
        """An issuing CA under this root (it may certify agencies, not further CAs)."""
        key = key or new_key()
        side = self.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
        subject = ca_name(str(side[0].value), organisation, common_name)
        builder = self._builder_for(subject, key.public_key(), now, lifetime)
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        certificate = builder.add_extension(_key_usage(sign_certs=True), critical=True).sign(
            self.private_key, None
        )
        return CertificateAuthority(certificate, key)

    def issue_agency(
        self,
        agency_code: str,
        agency_name: str,
        role: str,
        *,
        public_key: Ed25519PublicKey,
        now: datetime,
        lifetime: timedelta,
    ) -> x509.Certificate:
        """An agency's signing certificate (profile in :mod:`sign.identity`)."""
        if role not in ROLES:
            raise TrustMaterialError(f"role {role!r}: must be one of {sorted(ROLES)}")
        subject = _agency_name(agency_code, agency_name, role)
        builder = self._builder_for(subject, public_key, now, lifetime)
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(agency_uri(agency_code))]),
            critical=False,
        )
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        return builder.add_extension(_key_usage(sign_certs=False), critical=True).sign(
            self.private_key, None
        )

    def issue_tls(
        self,
        name: str,
        role: str,
        *,
        public_key: Ed25519PublicKey,
        now: datetime,
        lifetime: timedelta,
        server_names: Sequence[x509.GeneralName] = (),
    ) -> x509.Certificate:
        """A TLS certificate (profile in :mod:`sign.tls_identity`): clientAuth, plus
        serverAuth and a SAN when ``server_names`` are given (a broker node)."""
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server_names:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        builder = self._builder_for(tls_name(name, role), public_key, now, lifetime)
        builder = builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        builder = builder.add_extension(
            _key_usage(sign_certs=False, non_repudiation=False), critical=True
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        if server_names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(list(server_names)), critical=False
            )
        return builder.sign(self.private_key, None)

    def _builder_for(
        self, subject: x509.Name, public_key: Ed25519PublicKey, now: datetime, lifetime: timedelta
    ) -> x509.CertificateBuilder:
        issuer_key = self.private_key.public_key()
        # A certificate never outlives its issuer: a chain is only as valid as its weakest link.
        not_after = min(now + lifetime, self.certificate.not_valid_after_utc)
        return _builder(
            subject,
            issuer=self.certificate.subject,
            public_key=public_key,
            issuer_public_key=issuer_key,
            not_before=now - _BACKDATE,
            not_after=not_after,
        )
