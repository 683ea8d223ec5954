"""Orders, acknowledgements and releases of the demo scenario, as the courts and police
units of the agency list would issue them (see :mod:`ops.scenario_gen`)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from typing import Any

from consumers.watchlist import OrderKind
from ops.scenario import (
    ScenarioAcknowledgement,
    ScenarioOrder,
    ScenarioRelease,
    SealedDocument,
    Subject,
)
from ops.scenario_values import (
    PROVINCE_PLACES,
    case_number,
    company_name,
    credit_code,
    id_number,
    mobile,
    person_name,
    plate_number,
    vin,
)
from schemas.agencies import Agency, AgencyRole, load_agencies

__all__ = ["ACTING_ROLES", "OrderMaker", "new_uuid"]

ACTING_ROLES = {
    OrderKind.EXIT_RESTRICTION: AgencyRole.BORDER_CONTROL,
    OrderKind.VEHICLE_SEARCH: AgencyRole.TRAFFIC_MANAGEMENT,
    OrderKind.LOCATE_DEBTOR: AgencyRole.PUBLIC_SECURITY,
}
"""The police role that acts on (and acknowledges) each order kind (MISSION §2)."""

_DURATIONS = {
    OrderKind.EXIT_RESTRICTION: dt.timedelta(days=365),
    OrderKind.VEHICLE_SEARCH: dt.timedelta(days=730),  # seizure of movables: up to 2 years
    OrderKind.LOCATE_DEBTOR: dt.timedelta(days=182),
}
_MEASURES = {
    OrderKind.EXIT_RESTRICTION: "限制出境措施",
    OrderKind.VEHICLE_SEARCH: "车辆查封措施",
    OrderKind.LOCATE_DEBTOR: "查找被执行人措施",
}
_REJECT_REASONS = (
    "被控人身份信息与户籍登记信息不一致，请核实后重新发起。",
    "协助执行通知书缺少电子签章，请补正后重新发起。",
    "控制期限超过规定上限，请核实后重新发起。",
)
_ACK_DELAY = dt.timedelta(seconds=2)
_RELEASE_DELAY = dt.timedelta(seconds=4)


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (reproducible, unlike uuid.uuid4)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _china_date(instant: dt.datetime) -> dt.date:
    return (instant + dt.timedelta(hours=8)).date()


class OrderMaker:
    """Issues orders for the provincial courts of the agency list, keeping each court's
    case numbers unique and every subject's identity recorded."""

    def __init__(self, rng: random.Random, base_time: dt.datetime) -> None:
        self._rng = rng
        self._base = base_time
        agencies = load_agencies()
        self._agencies = agencies
        self.courts: tuple[Agency, ...] = tuple(c for c in agencies.courts() if c.province)
        self._seq = {court.code: rng.randrange(100, 3000) for court in self.courts}
        self._handlers = {
            court.code: [(person_name(rng), mobile(rng)) for _ in range(3)] for court in self.courts
        }
        self.identities: set[str] = set()
        self.orders: list[ScenarioOrder] = []

    # --- courts and subjects ------------------------------------------------------------------
    def court(self, province: str | None = None) -> Agency:
        """A court (of ``province``): intermediate and basic courts issue most orders."""
        pool = [c for c in self.courts if province is None or _province(c) == province]
        weights = [1 if len(c.code) == 2 else 3 for c in pool]
        return self._rng.choices(pool, weights)[0]

    def person(self, province: str) -> Subject:
        while True:
            number, female = id_number(self._rng, PROVINCE_PLACES[province].areas)
            if number not in self.identities:
                self.identities.add(number)
                return Subject(person_name(self._rng, female), id_number=number)

    def vehicle(self, province: str) -> Subject:
        while True:
            plate = plate_number(self._rng, PROVINCE_PLACES[province].plate_prefixes)
            if plate not in self.identities:
                self.identities.add(plate)
                owner = person_name(self._rng)
                return Subject(owner, plate_number=plate, vin=vin(self._rng))

    def subject_for(self, kind: OrderKind, court: Agency) -> Subject:
        province = _province(court)
        return self.vehicle(province) if kind is OrderKind.VEHICLE_SEARCH else self.person(province)

    # --- orders --------------------------------------------------------------------------------
    def order(
        self,
        kind: OrderKind,
        court: Agency,
        subject: Subject | None = None,
        *,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> ScenarioOrder:
        rng = self._rng
        subject = subject or self.subject_for(kind, court)
        if start is None:
            start = self._base - dt.timedelta(
                days=rng.randrange(1, 120), seconds=rng.randrange(86_400)
            )
        end = end or start + _DURATIONS[kind]
        self._seq[court.code] += rng.randrange(1, 40)
        year = _china_date(self._base).year - rng.choice((0, 0, 0, 1))
        case = case_number(
            court, year, self._seq[court.code], rng.choice(("执", "执", "执", "执恢"))
        )
        handler_name, handler_phone = rng.choice(self._handlers[court.code])
        documents = _documents(kind, court, case, subject, self._base)
        record: dict[str, Any] = {
            "order_id": new_uuid(rng),
            "case_number": case,
            "enforcing_court_code": court.code,
            "handler": {"name": handler_name, "phone": handler_phone},
            "subject": self._subject_record(subject, court),
            "control_period_start": start,
            "control_period_end": end,
            "police_requirements": _requirements(kind, subject, impound := rng.random() < 0.6),
            "sealed_documents": [document.record() for document in documents],
            "province_code": _province(court),
            "issued_at": self._base,
        }
        if kind is OrderKind.VEHICLE_SEARCH:
            record["seizure_ruling_reference"] = documents[0].document_id
            record["impound_on_sight"] = impound
        order = ScenarioOrder(
            str(record["order_id"]), kind, court.code, subject, start, end, record, documents
        )
        self.orders.append(order)
        return order

    def _subject_record(self, subject: Subject, court: Agency) -> dict[str, Any]:
        if not subject.is_vehicle:
            return {"name": subject.name, "id_number": subject.id_number}
        if self._rng.random() < 0.7:
            number, _ = id_number(self._rng, PROVINCE_PLACES[_province(court)].areas)
            owner = {"kind": "NATURAL_PERSON", "name": subject.name, "id_number": number,
                     "organisation_code": None}  # fmt: skip
        else:
            places = PROVINCE_PLACES[_province(court)]
            owner = {"kind": "LEGAL_PERSON", "name": company_name(self._rng, places.city),
                     "id_number": None,
                     "organisation_code": credit_code(self._rng, places.areas[0])}  # fmt: skip
        return {"plate_number": subject.plate_number, "vin": subject.vin, "owner": owner}

    # --- acknowledgements and releases -------------------------------------------------------
    def acknowledgements(
        self, orders: Sequence[ScenarioOrder], silent: str, reject: set[str]
    ) -> list[ScenarioAcknowledgement]:
        """Every serving unit acknowledges every order but ``silent``; the first unit rejects
        the orders in ``reject`` (with a reason)."""
        acks = []
        for order in orders:
            if order.order_id == silent:
                continue
            units = self._agencies.units_serving_court(order.court, ACTING_ROLES[order.kind])
            for index, unit in enumerate(units):
                rejected = index == 0 and order.order_id in reject
                when = (
                    self._base + _ACK_DELAY + dt.timedelta(milliseconds=self._rng.randrange(2000))
                )
                record = {
                    "order_id": order.order_id,
                    "order_kind": order.kind.value,
                    "court_code": order.court,
                    "acknowledging_unit_code": unit.code,
                    "status": "REJECTED" if rejected else "DEPLOYED",
                    "reason": self._rng.choice(_REJECT_REASONS) if rejected else None,
                    "acknowledged_at": when,
                }
                status = str(record["status"])
                acks.append(
                    ScenarioAcknowledgement(order.order_id, order.court, unit.code, status, record)
                )
        return acks

    def release(self, order: ScenarioOrder) -> ScenarioRelease:
        case = str(order.record["case_number"])
        measure = _MEASURES[order.kind]
        sentence = (
            f"本院在执行{case}一案中，被执行人已履行生效法律文书确定的全部义务，决定解除{measure}。"
        )
        court = self._agencies.get(order.court)
        document_id = f"{case}之五"
        body = _document_body(court, "解除协助执行通知书", document_id, order.subject, sentence,
                              self._base)  # fmt: skip
        notice = SealedDocument(
            "RELEASE_NOTICE", document_id, f"解除协助执行通知书{document_id}", body
        )
        record = {
            "order_id": order.order_id,
            "order_kind": order.kind.value,
            "case_number": case,
            "releasing_court_code": order.court,
            "reason": f"被执行人已履行全部义务，解除{_MEASURES[order.kind]}。",
            "sealed_documents": [notice.record()],
            "released_at": self._base + _RELEASE_DELAY,
        }
        return ScenarioRelease(order.order_id, order.court, order.subject, record)


def _province(court: Agency) -> str:
    assert court.province is not None  # the maker uses provincial courts only
    return court.province.code


def _requirements(kind: OrderKind, subject: Subject, impound: bool) -> str:
    if kind is OrderKind.EXIT_RESTRICTION:
        return f"限制被执行人{subject.name}出境；发现其出境时予以阻止并立即通知承办人。"
    if kind is OrderKind.LOCATE_DEBTOR:
        return f"被执行人{subject.name}已被决定司法拘留十五日；发现后立即控制并通知承办人。"
    action = "予以扣押并通知承办人" if impound else "立即通知承办人"
    return f"查封该车辆，禁止办理转移登记和抵押登记；发现车辆时{action}。"


_DOCUMENTS = {
    OrderKind.EXIT_RESTRICTION: (("DECISION", "限制出境决定书", "之二"),
                                 ("ASSISTANCE_NOTICE", "协助执行通知书", "之三")),
    OrderKind.VEHICLE_SEARCH: (("RULING", "执行裁定书", "之一"),
                               ("ASSISTANCE_NOTICE", "协助执行通知书", "之四")),
    OrderKind.LOCATE_DEBTOR: (("DETENTION_DECISION", "拘留决定书", "之二"),
                              ("ASSISTANCE_NOTICE", "协助执行通知书", "之三")),
}  # fmt: skip


def _documents(
    kind: OrderKind, court: Agency, case: str, subject: Subject, issued: dt.datetime
) -> tuple[SealedDocument, ...]:
    return tuple(
        SealedDocument(
            doc_kind,
            f"{case}{suffix}",
            f"{title}{case}{suffix}",
            _document_body(
                court,
                title,
                f"{case}{suffix}",
                subject,
                f"本院在执行{case}一案中，依照《中华人民共和国民事诉讼法》的有关规定，"
                f"决定采取{_MEASURES[kind]}。",
                issued,
            ),
        )
        for doc_kind, title, suffix in _DOCUMENTS[kind]
    )


def _document_body(  # noqa: PLR0917 - the document's parts, in reading order
    court: Agency,
    title: str,
    document_id: str,
    subject: Subject,
    sentence: str,
    issued: dt.datetime,
) -> bytes:
    """The generated document file (plain UTF-8 text standing in for the sealed PDF)."""
    if subject.is_vehicle:
        who = f"车辆：号牌号码{subject.plate_number}，车辆识别代号{subject.vin or '不详'}"
    else:
        who = f"被执行人：{subject.name}，公民身份号码{subject.id_number}"
    day = _china_date(issued)
    lines = (
        court.name,
        title,
        document_id,
        who,
        sentence,
        f"{day.year}年{day.month}月{day.day}日",
        f"（{court.name}电子签章）",
    )
    return "\n".join(lines).encode("utf-8") + b"\n"
