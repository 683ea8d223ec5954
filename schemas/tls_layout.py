"""Where the TLS material of a deployment lives, in one place (``<keys>/tls/``).

Written by ``zf801 keys`` (:mod:`sign.keystore`), read by the client factory
(``topics.clients``) and the local broker (``ops``). Signing keys stay signing keys: TLS
client identities have keys of their own.

    <keys>/tls/
      identities/<NAME>/chain.pem   leaf (CN=<NAME>, OU=<role>) + issuing CA, PEM
      identities/<NAME>/key.pem     its private key, PKCS#8 encrypted with the key passphrase
      trust/<side>.pem              the CA a listener of that side trusts: court, police, bus
      brokers.pem                   the CA clients trust for the brokers' own certificates
      nodes/node-<id>.p12           a broker node's key and chain (PKCS#12, key passphrase)

``<NAME>`` is an agency code, ``node-<id>`` for a broker node, or :data:`ADMIN_NAME`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "ADMIN_NAME",
    "SIDES",
    "SIDE_OF_ROLE",
    "Side",
    "TlsIdentityFiles",
    "TlsLayout",
    "node_name",
]

Side = Literal["court", "police", "bus"]
SIDES: Final[tuple[Side, ...]] = ("court", "police", "bus")
ADMIN_NAME: Final = "ZF801-ADMIN"
"""The operator identity that creates topics, changes configs and ACLs (a super user)."""
SIDE_OF_ROLE: Final[dict[str, Side]] = {
    "court": "court",
    "command-system": "court",
    "list-subscriber": "court",
    "border-control": "police",
    "traffic-management": "police",
    "public-security": "police",
    "bus": "bus",
}
"""The listener (and issuing CA) of each agency role; broker nodes and the admin are "bus"."""


def node_name(node_id: int) -> str:
    return f"node-{node_id}"


@dataclass(frozen=True, slots=True)
class TlsIdentityFiles:
    chain: Path
    key: Path

    def exists(self) -> bool:
        return self.chain.is_file() and self.key.is_file()


@dataclass(frozen=True, slots=True)
class TlsLayout:
    root: Path

    @classmethod
    def under(cls, keys_dir: Path) -> TlsLayout:
        return cls(keys_dir / "tls")

    def identity(self, name: str) -> TlsIdentityFiles:
        folder = self.root / "identities" / name
        return TlsIdentityFiles(folder / "chain.pem", folder / "key.pem")

    def truststore(self, side: Side) -> Path:
        return self.root / "trust" / f"{side}.pem"

    @property
    def brokers_ca(self) -> Path:
        return self.root / "brokers.pem"

    def node_keystore(self, node_id: int) -> Path:
        return self.root / "nodes" / f"{node_name(node_id)}.p12"
