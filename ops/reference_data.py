"""Synthetic reference data for the police responders: rows of the five kinds a reference
store holds (:mod:`consumers.query_source`), as ``zf801 responder load`` reads them, for
demos and load tests. People from several provinces with their identity, exit-entry
documents, border crossings, vehicles and hotel stays; companies with vehicles. One seed
always gives the same rows; nothing here touches global randomness.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ops.scenario import Subject
from ops.scenario_values import (
    PROVINCE_PLACES,
    case_number,
    company_name,
    credit_code,
    id_number,
    mobile,
    other_areas,
    person_name,
    plate_number,
    vin,
)
from schemas.agencies import Agency, courts
from schemas.identifiers import birth_date_of
from schemas.regions import PLATE_PROVINCE_CHARS, Province, province

__all__ = ["generate", "rows_for_person", "rows_for_vehicle", "write_jsonl"]

Row = tuple[str, dict[str, Any]]
"""A row of the reference data: its kind and its fields, in the JSON mapping."""

# Everything happened between these instants: fixed, so that a seed's rows never change.
_FIRST = dt.datetime(2018, 1, 1, tzinfo=dt.UTC)
_SPAN_S = int((dt.datetime(2025, 12, 1, tzinfo=dt.UTC) - _FIRST).total_seconds())
_STREETS = ("建国路", "人民路", "解放路", "中山路", "和平街", "长江路", "新华街", "学院路",
            "滨江大道", "青年路", "文化路", "胜利街")  # fmt: skip
_HOTEL_CHAINS = ("汉庭酒店", "如家酒店", "全季酒店", "7天连锁酒店", "锦江之星", "亚朵酒店",
                 "维也纳酒店", "格林豪泰酒店")  # fmt: skip
_PORTS = (*(port for places in PROVINCE_PLACES.values() for port, _ in places.ports),
          "珠海拱北口岸", "成都天府国际机场口岸", "昆明长水国际机场口岸",
          "杭州萧山国际机场口岸")  # fmt: skip
_DESTINATIONS = ("HKG", "HKG", "MAC", "THA", "JPN", "KOR", "SGP", "MYS", "VNM", "USA", "GBR",
                 "AUS", "TWN")  # fmt: skip
_DOCUMENTS = (("ORDINARY_PASSPORT", "E", 10), ("HK_MACAO_PERMIT", "C", 10),
              ("TAIWAN_PERMIT", "L", 10))  # fmt: skip
_MODELS = (("大众", "SVW7183LJD"), ("丰田", "GTM7250GB"), ("本田", "HG7150CAC6"),
           ("比亚迪", "BYD7006BEV"), ("吉利", "MR7153A01"), ("长安", "SC7164AAA6"),
           ("别克", "SGM7159DAA1"), ("日产", "DFL7160VBL2"), ("宝马", "BMW7201KX"),
           ("奔驰", "BJ7204GEL"), ("五菱", "LZW6447BAF"), ("福田", "BJ1032V5JV5"))  # fmt: skip
_VEHICLE_TYPES = ("K33 小型轿车", "K33 小型轿车", "K31 小型普通客车", "K32 小型越野客车",
                  "H31 轻型普通货车")  # fmt: skip
_BANKS = ("中国工商银行股份有限公司", "中国建设银行股份有限公司", "中国银行股份有限公司",
          "招商银行股份有限公司", "平安银行股份有限公司")  # fmt: skip
_ALL_AREAS = (*(a for places in PROVINCE_PLACES.values() for a in places.areas), *other_areas())
_TRIP_DAYS = 21


def _instant(rng: random.Random) -> dt.datetime:
    return _FIRST + dt.timedelta(seconds=rng.randrange(_SPAN_S))


def _rfc3339(instant: dt.datetime) -> str:
    return f"{instant:%Y-%m-%dT%H:%M:%S}.000000Z"


def _police(home: Province) -> str:
    """The province's public security body: a municipality's bureau or a province's
    department."""
    return home.name + ("公安局" if home.name.endswith("市") else "公安厅")


@cache
def _hotels(code: str) -> tuple[tuple[str, str], ...]:
    """(name, address) of the hotels of a province: the scenario's, and one of each chain
    on each street."""
    home = province(code)
    known = PROVINCE_PLACES[code].hotels if code in PROVINCE_PLACES else ()
    made = tuple(
        (f"{chain}（{street}店）", f"{home.name}{street}{(i * 37) % 400 + 1}号")
        for i, (chain, street) in enumerate((c, s) for c in _HOTEL_CHAINS for s in _STREETS)
    )
    return known + made


@cache
def _courts() -> tuple[Agency, ...]:
    return tuple(court for court in courts() if court.case_abbr)


def _identity(rng: random.Random, number: str, name: str) -> dict[str, Any]:
    home = province(number[:2])
    street = rng.choice(_STREETS)
    address = None
    if rng.random() < 0.8:
        address = f"{home.name}{street}{rng.randrange(1, 300)}号院{rng.randrange(1, 20)}号楼"
        address += f"{rng.randrange(1, 6)}单元{rng.randrange(1, 30)}0{rng.randrange(1, 5)}室"
    female = int(number[16]) % 2 == 0
    return {
        "name": name,
        "former_names": [person_name(rng, female)] if rng.random() < 0.05 else [],
        "sex": "FEMALE" if female else "MALE",
        "birth_date": birth_date_of(number).isoformat(),
        "household_registration_place": f"{home.name}{street}街道",
        "address": address,
        "id_number": number,
        "registered_phone": mobile(rng) if rng.random() < 0.7 else None,
    }


def _document(rng: random.Random, number: str, kind: tuple[str, str, int]) -> dict[str, Any]:
    document_type, prefix, years = kind
    issued = (_FIRST + dt.timedelta(days=rng.randrange(-2500, 2500))).date()
    return {
        "id_number": number,
        "document_type": document_type,
        "document_number": f"{prefix}{rng.randrange(10**8):08d}",
        "issued_on": issued.isoformat(),
        "valid_until": (issued + dt.timedelta(days=round(365.25 * years) - 1)).isoformat(),
        "issuing_authority": f"{_police(province(number[:2]))}出入境管理局",
    }


def _trip(rng: random.Random, number: str, document: Mapping[str, Any]) -> list[Row]:
    """A journey abroad: out through one port, back through another some days later."""
    out = _instant(rng)
    back = out + dt.timedelta(days=rng.randrange(1, _TRIP_DAYS), seconds=rng.randrange(86400))
    used = {k: document[k] for k in ("document_type", "document_number")}
    return [
        ("crossing", {"id_number": number, "crossed_at": _rfc3339(out), "direction": "OUT",
                      "port": rng.choice(_PORTS),
                      "destination_country_or_region": rng.choice(_DESTINATIONS), **used}),
        ("crossing", {"id_number": number, "crossed_at": _rfc3339(back), "direction": "IN",
                      "port": rng.choice(_PORTS), "destination_country_or_region": None, **used}),
    ]  # fmt: skip


def _stay(rng: random.Random, number: str, name: str) -> Row:
    code = number[:2] if rng.random() < 0.6 else rng.choice(list(PROVINCE_PLACES))
    hotel, address = rng.choice(_hotels(code))
    checked_in = _instant(rng)
    nights = dt.timedelta(days=rng.randrange(1, 5), hours=rng.randrange(-6, 6))
    checked_out = None if rng.random() < 0.03 else _rfc3339(checked_in + nights)
    return "hotel_stay", {
        "id_number": number,
        "name": name,
        "hotel_name": hotel,
        "hotel_address": address,
        "room": f"{rng.randrange(1, 20)}{rng.randrange(1, 40):02d}",
        "checked_in_at": _rfc3339(checked_in),
        "checked_out_at": checked_out,
        "registered_phone": mobile(rng) if rng.random() < 0.8 else None,
    }


def _count(rng: random.Random, complete: bool, weights: Sequence[int]) -> int:
    """How many of a kind: drawn from ``weights`` (for 0, 1, 2...), at least one when the
    person must be complete."""
    drawn = rng.choices(range(len(weights)), weights)[0]
    return max(drawn, 1) if complete else drawn


def rows_for_person(
    id_number: str, name: str, rng: random.Random, *, complete: bool = True
) -> list[Row]:
    """The rows of one person: identity, exit-entry documents with journeys abroad, hotel
    stays and vehicles. ``complete`` (for a demo's debtors) gives at least one of each."""
    rows: list[Row] = [("person", _identity(rng, id_number, name))]
    for kind in rng.sample(_DOCUMENTS, _count(rng, complete, (65, 25, 10))):
        document = _document(rng, id_number, kind)
        rows.append(("document", document))
        for _ in range(_count(rng, complete, (40, 35, 25))):
            rows.extend(_trip(rng, id_number, document))
    rows.extend(_stay(rng, id_number, name) for _ in range(_count(rng, complete, (30, 40, 30))))
    owner = {"kind": "NATURAL_PERSON", "name": name, "id_number": id_number}
    home = province(id_number[:2])
    for _ in range(_count(rng, complete, (70, 25, 5))):
        rows.extend(rows_for_vehicle(_plate(rng, home), vin(rng), rng, owner=owner))
    return rows


def _plate(rng: random.Random, home: Province) -> str:
    if home.code in PROVINCE_PLACES:
        return plate_number(rng, PROVINCE_PLACES[home.code].plate_prefixes)
    return plate_number(rng, [f"{home.plate_char}{letter}" for letter in "ABCDE"])


def rows_for_vehicle(
    plate: str, vehicle_vin: str, rng: random.Random, *, owner: Mapping[str, Any] | None = None
) -> list[Row]:
    """The registration of one vehicle. ``owner`` is its owner's ``kind``, ``name`` and
    ``id_number`` or ``organisation_code``; by default a company of the plate's province."""
    home = PLATE_PROVINCE_CHARS.get(plate[:1]) or province("11")
    if owner is None:
        owner = {"kind": "LEGAL_PERSON", "name": company_name(rng, home.name),
                 "organisation_code": credit_code(rng, rng.choice(_areas(home.code)))}  # fmt: skip
    brand, model = rng.choice(_MODELS)
    seized = rng.random() < 0.03
    court = rng.choice(_courts())
    return [("vehicle", {
        "plate_number": plate,
        "brand": brand,
        "model": model,
        "vehicle_type": rng.choice(_VEHICLE_TYPES),
        "vin": vehicle_vin,
        "owner": {"id_number": None, "organisation_code": None, **owner},
        "registering_authority": f"{_police(home)}交通管理局车辆管理所",
        "registered_on": _instant(rng).date().isoformat(),
        "mortgagee": f"{rng.choice(_BANKS)}{home.name}分行" if rng.random() < 0.15 else None,
        "seizing_authority": court.name if seized else None,
        "seizure_document_name": f"{case_number(court, 2024, rng.randrange(1, 3000))}之一执行裁定书"
        if seized else None,
    })]  # fmt: skip


@cache
def _areas(code: str) -> tuple[str, ...]:
    return tuple(a for a in _ALL_AREAS if a.startswith(code)) or (f"{code}0101",)


def _subject_rows(subject: Subject, rng: random.Random) -> list[Row]:
    if subject.plate_number is not None:
        owner = {"kind": "NATURAL_PERSON", "name": subject.name}
        if subject.id_number:
            owner["id_number"] = subject.id_number
        return rows_for_vehicle(subject.plate_number, subject.vin or vin(rng), rng, owner=owner)
    return rows_for_person(subject.id_number or "", subject.name, rng)


def generate(count: int, seed: int = 0, *, subjects: Sequence[Subject] = ()) -> Iterator[Row]:
    """About ``count`` rows (exactly ``count``, unless the ``subjects`` alone need more)
    for a reference store: first the records of ``subjects`` (complete, so that a demo's
    debtors and vehicles are on record), then people of several provinces (each with a
    ~5% chance of a company vehicle beside them) until ``count`` is reached."""
    rng = random.Random(seed)  # noqa: S311 - reproducible on purpose, not a secret
    made = 0
    for subject in subjects:
        rows = _subject_rows(subject, rng)
        made += len(rows)
        yield from rows
    seen = {s.id_number for s in subjects if s.id_number}
    while made < count:
        number, female = id_number(rng, _ALL_AREAS)
        if number in seen:
            continue
        seen.add(number)
        rows = rows_for_person(number, person_name(rng, female), rng, complete=False)
        if rng.random() < 0.05:
            home = province(number[:2])
            rows.extend(rows_for_vehicle(_plate(rng, home), vin(rng), rng))
        rows = rows[: count - made]
        made += len(rows)
        yield from rows


def write_jsonl(path: Path, rows: Iterable[Row]) -> int:
    """Write ``rows`` as JSON lines (``{"kind": ..., **row}``) to ``path``; the count."""
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for kind, row in rows:
            out.write(json.dumps({"kind": kind, **row}, ensure_ascii=False) + "\n")
            written += 1
    return written
