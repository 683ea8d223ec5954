"""Builders of realistic bus events for tests and benchmarks: valid identifiers (check
characters computed), fresh ids, orders of every kind, sightings, releases and
acknowledgements, as upstream systems would publish them."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ops.deployment import Deployment
from schemas.agencies import load_agencies
from schemas.identifiers import id_number_check_char, vin_check_digit
from schemas.settings import Settings
from sign.keystore import KeyStore

__all__ = ["Records", "trust_set"]

_NOW = dt.datetime.now


def trust_set(home: Path, codes: Iterable[str] | None = None) -> KeyStore:
    """A key store under ``home`` with the two roots, a key and a TLS identity for each
    agency of ``codes`` (default: every agency in the list), TLS identities for the admin
    and broker nodes 1-3 (``init`` issues them), certificates valid from a minute ago."""
    agencies = load_agencies()
    chosen = agencies.agencies.values() if codes is None else [agencies.get(c) for c in codes]
    store = KeyStore.from_settings(Settings(home=home))
    store.init(list(chosen), _NOW(dt.UTC) - dt.timedelta(minutes=1))
    return store


@contextmanager
def deployed(
    home: Path, settings: Settings, agencies: Iterable[str], prefix: str
) -> Iterator[Deployment]:
    """A deployment in ``home`` with the keys of ``agencies`` (:func:`trust_set`) and the
    catalog's topics (and, under mTLS, their ACLs) under a name prefix of its own
    (``prefix`` and 8 random hex digits); its run is removed afterwards."""
    trust_set(home, agencies)
    deployment = Deployment.create(settings.model_copy(
        update={"home": home, "topic_prefix": f"{prefix}{uuid.uuid4().hex[:8]}-"}
    ))  # fmt: skip
    deployment.apply_topics()
    try:
        yield deployment
    finally:
        deployment.remove_run()


class Records:
    """Builders of realistic events (valid identifiers, fresh ids); identifiers are drawn
    from a generator seeded with ``seed``."""

    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)
        self._issued: set[str] = set()

    def id_number(self, area: str = "110105") -> str:
        """A valid citizen ID number, never one this builder gave before: the space is 2e7
        a region, so a test drawing thousands of strangers next to its watched subjects
        would otherwise now and then draw one of them (an unexpected, correct hit)."""
        while True:
            birth = dt.date(1960, 1, 1) + dt.timedelta(days=self._random.randrange(20000))
            first17 = f"{area}{birth:%Y%m%d}{self._random.randrange(1000):03d}"
            if first17 not in self._issued:
                self._issued.add(first17)
                return first17 + id_number_check_char(first17)

    def plate(self, province: str = "京") -> str:
        digits = "".join(self._random.choice("0123456789") for _ in range(5))
        return f"{province}A{digits}"

    def vin(self) -> str:
        alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
        body = "LSV" + "".join(self._random.choice(alphabet) for _ in range(14))
        vin = body[:8] + "0" + body[9:]
        return vin[:8] + vin_check_digit(vin) + vin[9:]

    @staticmethod
    def _order_common(
        court: str, case_number: str, start: dt.datetime, end: dt.datetime
    ) -> dict[str, Any]:
        province = load_agencies().get(court).province
        return {
            "order_id": str(uuid.uuid4()),
            "case_number": case_number,
            "enforcing_court_code": court,
            "handler": {"name": "王法官", "phone": "13900139000"},
            "control_period_start": start,
            "control_period_end": end,
            "police_requirements": "发现后立即通知承办人",
            "sealed_documents": [
                {
                    "kind": "RULING",
                    "document_id": f"doc-{uuid.uuid4().hex[:8]}",
                    "sha256": bytes(32),
                    "title": "执行裁定书",
                },
            ],
            "province_code": province.code if province else "11",
            "issued_at": _NOW(dt.UTC),
        }

    def person_order(
        self,
        court: str,
        case_number: str,
        id_number: str,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> dict[str, Any]:
        now = _NOW(dt.UTC)
        record = self._order_common(
            court,
            case_number,
            start or now - dt.timedelta(days=1),
            end or now + dt.timedelta(days=30),
        )
        record["subject"] = {"name": "李四", "id_number": id_number}
        return record

    def vehicle_order(
        self, court: str, case_number: str, plate: str, vin: str, **kwargs: Any
    ) -> dict[str, Any]:
        record = self.person_order(court, case_number, "", **kwargs)
        record["subject"] = {"plate_number": plate, "vin": vin, "owner": None}
        record["seizure_ruling_reference"] = f"{case_number}之一"
        record["impound_on_sight"] = True
        return record

    @staticmethod
    def _person_sighting(
        unit: str, id_number: str, when: dt.datetime, **fields: Any
    ) -> dict[str, Any]:
        return {
            "sighting_id": str(uuid.uuid4()),
            "reporting_unit_code": unit,
            "observed_at": when,
            "person": {"name": "李四", "id_number": id_number},
            **fields,
        }

    @classmethod
    def border_crossing(
        cls, unit: str, id_number: str, observed_at: dt.datetime | None = None
    ) -> dict[str, Any]:
        when = observed_at or _NOW(dt.UTC)
        return cls._person_sighting(
            unit,
            id_number,
            when,
            direction="OUT",
            port="首都国际机场口岸",
            destination_country_or_region="THA",
            document_type="ORDINARY_PASSPORT",
            document_number="E12345678",
            crossed_at=when,
        )

    @classmethod
    def hotel_check_in(
        cls, unit: str, id_number: str, observed_at: dt.datetime | None = None
    ) -> dict[str, Any]:
        when = observed_at or _NOW(dt.UTC)
        return cls._person_sighting(
            unit,
            id_number,
            when,
            hotel_name="如家酒店（朝阳店）",
            hotel_address="北京市朝阳区建国路88号",
            room="1203",
            checked_in_at=when,
            expected_check_out=None,
            registered_phone="13800138000",
        )

    @staticmethod
    def vehicle_encounter(unit: str, plate: str, vin: str | None, kind: str) -> dict[str, Any]:
        now = _NOW(dt.UTC)
        return {
            "sighting_id": str(uuid.uuid4()),
            "reporting_unit_code": unit,
            "observed_at": now,
            "kind": kind,
            "vehicle": {"plate_number": plate, "vin": vin},
            "place": "北京市车辆管理所",
        }

    @staticmethod
    def release(order: Mapping[str, Any], kind: str) -> dict[str, Any]:
        return {
            "order_id": order["order_id"],
            "order_kind": kind,
            "case_number": order["case_number"],
            "releasing_court_code": order["enforcing_court_code"],
            "reason": "被执行人已履行全部义务",
            "sealed_documents": [],
            "released_at": _NOW(dt.UTC),
        }

    @staticmethod
    def acknowledgement(
        order: Mapping[str, Any], kind: str, unit: str, status: str = "DEPLOYED"
    ) -> dict[str, Any]:
        return {
            "order_id": order["order_id"],
            "order_kind": kind,
            "court_code": order["enforcing_court_code"],
            "acknowledging_unit_code": unit,
            "status": status,
            "reason": None if status == "DEPLOYED" else "证件信息不全",
            "acknowledged_at": _NOW(dt.UTC),
        }

    @staticmethod
    def query(
        kind: str,
        subject: str,
        court: str = "BJ01",
        case_number: str = "（2026）京01执100号",
        **fields: Any,
    ) -> dict[str, Any]:
        """A query of ``kind`` (P1-P5) in the JSON mapping, as a court's system sends it to
        the query client (correlation id, times and deadline left to the client unless
        given in ``fields``). ``subject``: the person's ID number; for P4 the owner's."""
        purposes = {"P2": "PRESERVATION_DEFENDANT"}
        document: dict[str, Any] = {
            "requesting_court_code": court,
            "case_number": case_number,
            "handler": {"name": "赵明", "phone": "010-65551234"},
            "subject_role": purposes.get(kind, "JUDGMENT_DEBTOR"),
            "reason": "查明被执行人身份及财产线索，以便采取强制执行措施。",
            "legal_basis": "《中华人民共和国民事诉讼法》第二百五十二条、第二百五十五条",
        }
        if kind == "P4":
            document["owner"] = {"kind": "NATURAL_PERSON", "name": "王建国", "id_number": subject,
                                 "organisation_code": None}  # fmt: skip
            document["plate_number"] = None
        else:
            document["subject"] = {"name": "王建国", "id_number": subject}
        if kind == "P5":
            document["stays_from"] = None
            document["stays_until"] = None
        return {**document, **fields}
