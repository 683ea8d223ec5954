"""A key store with the agencies the consumer unit tests sign for (real Ed25519 keys)."""

from __future__ import annotations

import pytest

from sign.keystore import KeyStore
from tests.builders import trust_set

POLICE = "110000000000"
TRAFFIC = "110000110000"


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return trust_set(tmp_path_factory.mktemp("consumers"), ("BJ01", POLICE, TRAFFIC, "BUS-MATCHER"))
