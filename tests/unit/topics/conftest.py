"""The real catalog and agency list, loaded once per test module of the topics package."""

from __future__ import annotations

import pytest

from schemas.agencies import AgencyList, load_agencies
from topics.catalog import Catalog, load_catalog


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def agencies() -> AgencyList:
    return load_agencies()
