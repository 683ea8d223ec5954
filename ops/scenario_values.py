"""Realistic values for the demo scenario, drawn from a caller's ``random.Random``.

Names, citizen ID numbers (with the area codes of a province and a correct MOD 11-2 check
character), plates of a province, VINs (ISO 3779 check digit), mobile numbers, unified
social credit codes, case numbers of a court, hotels, ports and vehicle offices. Nothing
here touches global randomness, so one seed always yields the same values.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

from schemas.agencies import Agency
from schemas.identifiers import (
    credit_code_check_char,
    id_number_check_char,
    organisation_code_check_char,
    vin_check_digit,
)

__all__ = [
    "PROVINCE_PLACES",
    "ProvincePlaces",
    "case_number",
    "company_name",
    "credit_code",
    "id_number",
    "mobile",
    "other_areas",
    "person_name",
    "pick_weighted",
    "plate_number",
    "vin",
]

_SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
)
_GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆建国志文东海林峰晨阳"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英慧婷雪琳洁玲燕红梅倩颖琴云莉萍桂兰晶佳怡欣悦"
_MOBILE_PREFIXES = (
    *(f"13{d}" for d in "0123456789"),
    *(f"15{d}" for d in "0123789"),
    *(f"18{d}" for d in "0156789"),
    "166",
    "177",
    "199",
)
_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # plate letters: no I, O
_VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
# World manufacturer identifiers of vehicles built in China.
_WMIS = ("LSV", "LFV", "LGB", "LHG", "LVS", "LBV", "LSG", "LGX", "LJD", "LVH", "LFM", "LDC")
_MODEL_YEARS = "HJKLMNPRS"  # 2017-2025
_ORG_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_COMPANY_WORDS = ("恒远", "鑫达", "华信", "宏图", "永盛", "金桥", "瑞丰", "嘉禾", "中盛", "天成")
_INDUSTRIES = ("商贸", "建设工程", "物流", "科技", "实业", "投资", "餐饮管理", "汽车租赁")
_OTHER_AREAS = (  # noqa: SIM905 - a table of area codes reads better as one string
    "320102 320506 330106 330212 370102 370203 410105 420106 430104 510104 500103 "
    "610113 350203 210102 130102 340104 360102 450103 530102 120101"
).split()
_OTHER_PLATES = ("苏A", "苏E", "浙A", "浙B", "鲁B", "豫A", "鄂A", "湘A", "川A", "渝A", "陕A", "闽D")


@dataclass(frozen=True, slots=True)
class ProvincePlaces:
    """Where things happen in a province: ID area codes of its districts, plate prefixes,
    hotels (name, address), border ports (port, frontier-inspection unit code), vehicle
    offices and patrol places."""

    city: str
    areas: tuple[str, ...]
    plate_prefixes: tuple[str, ...]
    hotels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, str], ...]
    vehicle_offices: tuple[str, ...]
    patrol_places: tuple[str, ...]


PROVINCE_PLACES: Mapping[str, ProvincePlaces] = MappingProxyType(
    {
        "11": ProvincePlaces(
            city="北京市",
            areas=("110101", "110102", "110105", "110106", "110108", "110112", "110114"),
            plate_prefixes=("京A", "京B", "京C", "京E", "京F", "京G", "京H", "京J", "京K", "京N"),
            hotels=(
                ("汉庭酒店（北京三里屯店）", "北京市朝阳区工人体育场北路13号"),
                ("如家酒店（北京西站店）", "北京市丰台区莲花池东路118号"),
                ("全季酒店（北京中关村店）", "北京市海淀区中关村大街27号"),
                ("锦江之星（北京王府井店）", "北京市东城区王府井大街88号"),
                ("7天连锁酒店（北京通州店）", "北京市通州区新华西街56号"),
            ),
            ports=(
                ("北京首都国际机场口岸", "110000230000"),
                ("北京大兴国际机场口岸", "110000230000"),
            ),
            vehicle_offices=(
                "北京市公安局公安交通管理局车辆管理所朝阳分所",
                "北京市公安局公安交通管理局车辆管理所海淀分所",
                "北京市顺义区机动车检测场",
            ),
            patrol_places=("北京市朝阳区建国路与东三环交叉口", "京藏高速清河收费站"),
        ),
        "31": ProvincePlaces(
            city="上海市",
            areas=("310101", "310104", "310105", "310106", "310110", "310112", "310115"),
            plate_prefixes=("沪A", "沪B", "沪C", "沪D", "沪E", "沪F", "沪G", "沪H", "沪J", "沪K"),
            hotels=(
                ("亚朵酒店（上海人民广场店）", "上海市黄浦区西藏中路268号"),
                ("汉庭酒店（上海虹桥枢纽店）", "上海市闵行区申长路1588号"),
                ("全季酒店（上海陆家嘴店）", "上海市浦东新区浦东南路855号"),
                ("如家酒店（上海徐家汇店）", "上海市徐汇区漕溪北路41号"),
            ),
            ports=(
                ("上海浦东国际机场口岸", "310000230000"),
                ("上海虹桥国际机场口岸", "310000230000"),
                ("上海吴淞口国际邮轮港口岸", "310000230000"),
            ),
            vehicle_offices=(
                "上海市公安局交通警察总队车辆管理所",
                "上海市浦东新区机动车检测站",
            ),
            patrol_places=("上海市延安高架路与南北高架路交叉口", "G2京沪高速安亭收费站"),
        ),
        "44": ProvincePlaces(
            city="广东省",
            areas=("440103", "440104", "440106", "440111", "440303", "440304", "440305"),
            plate_prefixes=("粤A", "粤B", "粤C", "粤E", "粤S", "粤T"),
            hotels=(
                ("维也纳酒店（广州天河客运站店）", "广东省广州市天河区燕岭路633号"),
                ("汉庭酒店（深圳福田口岸店）", "广东省深圳市福田区福强路3005号"),
                ("7天连锁酒店（广州北京路店）", "广东省广州市越秀区北京路288号"),
                ("锦江之星（深圳罗湖火车站店）", "广东省深圳市罗湖区人民南路3002号"),
            ),
            ports=(
                ("广州白云国际机场口岸", "440100230000"),
                ("深圳罗湖口岸", "440300230000"),
                ("深圳湾口岸", "440300230000"),
                ("皇岗口岸", "440300230000"),
            ),
            vehicle_offices=(
                "广州市公安局交通警察支队车辆管理所",
                "深圳市公安局交通警察局车辆管理所",
            ),
            patrol_places=(
                "深圳市福田区皇岗路福田检查站",
                "广州市天河区广州大道北与环城高速交叉口",
            ),
        ),
    }
)

_T = TypeVar("_T")


def pick_weighted(rng: random.Random, table: Sequence[tuple[_T, int]]) -> _T:
    """One value of a (value, weight) table."""
    return rng.choices([value for value, _ in table], [weight for _, weight in table])[0]


def person_name(rng: random.Random, female: bool | None = None) -> str:
    """A Chinese name: surname and one or two given characters."""
    female = rng.random() < 0.5 if female is None else female
    pool = _GIVEN_FEMALE if female else _GIVEN_MALE
    given = "".join(rng.choice(pool) for _ in range(1 if rng.random() < 0.3 else 2))
    return rng.choice(_SURNAMES) + given


def id_number(rng: random.Random, areas: Sequence[str] | None = None) -> tuple[str, bool]:
    """A citizen ID number of one of ``areas`` (default: anywhere) and whether it is a
    woman's (the 17th digit is even for women)."""
    area = rng.choice(areas or _OTHER_AREAS)
    born = dt.date(1955, 1, 1) + dt.timedelta(days=rng.randrange(45 * 365))
    serial = rng.randrange(1000)
    first17 = f"{area}{born:%Y%m%d}{serial:03d}"
    return first17 + id_number_check_char(first17), serial % 2 == 0


def other_areas() -> tuple[str, ...]:
    """Area codes of districts outside the provinces that have courts on the demo bus."""
    return tuple(_OTHER_AREAS)


def plate_number(rng: random.Random, prefixes: Sequence[str] | None = None) -> str:
    """An ordinary plate (5 characters, at most two letters) or a small new-energy plate."""
    prefix = rng.choice(prefixes or _OTHER_PLATES)
    if rng.random() < 0.2:
        return f"{prefix}{rng.choice('DF')}{rng.choice(_LETTERS + '0123456789')}" + "".join(
            rng.choice("0123456789") for _ in range(4)
        )
    serial = [rng.choice("0123456789") for _ in range(5)]
    for position in rng.sample(range(5), rng.choice((0, 1, 1, 2))):
        serial[position] = rng.choice(_LETTERS)
    return prefix + "".join(serial)


def vin(rng: random.Random) -> str:
    """A 17-character VIN of a vehicle built in China, with its ISO 3779 check digit."""
    body = (
        rng.choice(_WMIS)
        + "".join(rng.choice(_VIN_CHARS) for _ in range(5))
        + "0"
        + rng.choice(_MODEL_YEARS)
        + rng.choice(_VIN_CHARS)
        + f"{rng.randrange(1_000_000):06d}"
    )
    return body[:8] + vin_check_digit(body) + body[9:]


def mobile(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(100_000_000):08d}"


def credit_code(rng: random.Random, area: str) -> str:
    """A unified social credit code of a company (登记管理部门 9, 类别 1) registered in
    ``area``, with the GB 11714 and GB 32100 check characters."""
    organisation = "".join(rng.choice(_ORG_CHARS[:10]) for _ in range(8))
    first17 = f"91{area}{organisation}{organisation_code_check_char(organisation)}"
    return first17 + credit_code_check_char(first17)


def company_name(rng: random.Random, city: str) -> str:
    short = city.removesuffix("市").removesuffix("省")
    return f"{short}{rng.choice(_COMPANY_WORDS)}{rng.choice(_INDUSTRIES)}有限公司"


def case_number(court: Agency, year: int, seq: int, kind: str = "执") -> str:
    """A case number of ``court`` (its 法院代字), e.g. （2026）京01执1234号."""
    return f"（{year}）{court.case_abbr}{kind}{seq}号"
