"""Fixtures for the signing tests: one in-memory trust set per test session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sign.events import EventSigner
from sign.trustset import TrustSet

NOW = datetime(2026, 11, 27, 5, 0, 0, tzinfo=UTC)
LIFETIME = timedelta(days=730)


@dataclass(frozen=True)
class Agency:
    code: str
    name: str
    role: str


COURT = Agency("BJ01", "北京市第一中级人民法院", "court")
COURT_2 = Agency("SH02", "上海市第二中级人民法院", "court")
BORDER = Agency("110000230000", "北京出入境边防检查总站", "border-control")
POLICE = Agency("110105000000", "北京市公安局朝阳分局", "public-security")
MATCHER = Agency("BUS-matcher", "ZF801 matcher", "bus")


@dataclass
class Issued:
    key: Ed25519PrivateKey
    certificate: x509.Certificate
    signer: EventSigner


@pytest.fixture(scope="session")
def trust_set() -> TrustSet:
    return TrustSet.create(NOW - timedelta(days=30))


@pytest.fixture(scope="session")
def issued(trust_set: TrustSet) -> dict[str, Issued]:
    out = {}
    for agency in (COURT, COURT_2, BORDER, POLICE, MATCHER):
        key, cert = trust_set.issue(
            agency.code, agency.name, agency.role, now=NOW - timedelta(days=1), lifetime=LIFETIME
        )
        out[agency.code] = Issued(key, cert, EventSigner(key, agency.code))
    return out


def _event_headers(
    source: str = COURT.code,
    when: datetime = NOW,
    event_type: str = "cn.zf801.orders.v1.ExitRestrictionOrder",
    event_id: str | None = None,
) -> list[tuple[str, bytes]]:
    """CloudEvents binary-mode headers as the envelope writes them."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", (event_id or str(uuid.uuid4())).encode()),
        ("ce_source", f"zf801:agency/{source}".encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", when.isoformat(timespec="microseconds").replace("+00:00", "Z").encode()),
        ("content-type", b"application/avro"),
        ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]


@pytest.fixture(scope="session")
def now() -> datetime:
    return NOW


@pytest.fixture(scope="session")
def make_headers() -> object:
    """``make_headers(source=..., when=..., event_type=..., event_id=...)``."""
    return _event_headers


def _hotel_check_in(when: datetime = NOW) -> dict[str, object]:
    """A valid HotelCheckIn sighting (the id number is the textbook example)."""
    return {
        "sighting_id": str(uuid.uuid4()),
        "reporting_unit_code": POLICE.code,
        "observed_at": when,
        "person": {"name": "张三", "id_number": "11010519491231002X"},
        "hotel_name": "北京饭店",
        "hotel_address": "北京市东城区东长安街33号",
        "room": "1203",
        "checked_in_at": when,
        "expected_check_out": None,
        "registered_phone": None,
    }


@pytest.fixture(scope="session")
def hotel_check_in() -> object:
    """``hotel_check_in(when=NOW)``: a valid HotelCheckIn record."""
    return _hotel_check_in
