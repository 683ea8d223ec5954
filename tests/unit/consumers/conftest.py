"""A key store with the agencies the consumer unit tests sign for (real Ed25519 keys)."""

from __future__ import annotations

import datetime as dt

import pytest

from schemas.agencies import load_agencies
from schemas.settings import Settings
from sign.keystore import KeyStore

POLICE = "110000000000"
TRAFFIC = "110000110000"


@pytest.fixture(scope="session")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    home = tmp_path_factory.mktemp("consumers")
    store = KeyStore.from_settings(Settings(home=home))
    agencies = load_agencies()
    store.init([agencies.get(c) for c in ("BJ01", POLICE, TRAFFIC, "BUS-MATCHER")],
               dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))  # fmt: skip
    return store
