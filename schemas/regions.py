"""Province-level divisions of China (GB/T 2260) with the short characters used on plates
and in case numbers, and the ISO 3166-2:CN codes that court codes are built from.

This is a national standard, not deployment configuration, so it lives in code; the
deployment's agencies and provincial rules are data (``schemas/data/agencies.yaml``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "CASE_ABBR_CHARS",
    "ID_NUMBER_AREA_PREFIXES",
    "PLATE_PROVINCE_CHARS",
    "PROVINCES",
    "Province",
    "province",
]


@dataclass(frozen=True, slots=True)
class Province:
    """One province-level division.

    ``plate_char`` is the character on plate numbers (None where the mainland issues no
    plates); ``case_char`` the high court's character in case numbers (案号), which differs
    from the plate character for Inner Mongolia (内 vs 蒙).
    """

    code: str
    name: str
    iso: str
    plate_char: str | None
    case_char: str | None


_ROWS: tuple[tuple[str, str, str, str | None, str | None], ...] = (
    ("11", "北京市", "BJ", "京", "京"),
    ("12", "天津市", "TJ", "津", "津"),
    ("13", "河北省", "HE", "冀", "冀"),
    ("14", "山西省", "SX", "晋", "晋"),
    ("15", "内蒙古自治区", "NM", "蒙", "内"),
    ("21", "辽宁省", "LN", "辽", "辽"),
    ("22", "吉林省", "JL", "吉", "吉"),
    ("23", "黑龙江省", "HL", "黑", "黑"),
    ("31", "上海市", "SH", "沪", "沪"),
    ("32", "江苏省", "JS", "苏", "苏"),
    ("33", "浙江省", "ZJ", "浙", "浙"),
    ("34", "安徽省", "AH", "皖", "皖"),
    ("35", "福建省", "FJ", "闽", "闽"),
    ("36", "江西省", "JX", "赣", "赣"),
    ("37", "山东省", "SD", "鲁", "鲁"),
    ("41", "河南省", "HA", "豫", "豫"),
    ("42", "湖北省", "HB", "鄂", "鄂"),
    ("43", "湖南省", "HN", "湘", "湘"),
    ("44", "广东省", "GD", "粤", "粤"),
    ("45", "广西壮族自治区", "GX", "桂", "桂"),
    ("46", "海南省", "HI", "琼", "琼"),
    ("50", "重庆市", "CQ", "渝", "渝"),
    ("51", "四川省", "SC", "川", "川"),
    ("52", "贵州省", "GZ", "贵", "黔"),
    ("53", "云南省", "YN", "云", "云"),
    ("54", "西藏自治区", "XZ", "藏", "藏"),
    ("61", "陕西省", "SN", "陕", "陕"),
    ("62", "甘肃省", "GS", "甘", "甘"),
    ("63", "青海省", "QH", "青", "青"),
    ("64", "宁夏回族自治区", "NX", "宁", "宁"),
    ("65", "新疆维吾尔自治区", "XJ", "新", "新"),
    # Taiwan, Hong Kong and Macao: GB/T 2260 codes, but no mainland plates or courts.
    ("71", "台湾省", "TW", None, None),
    ("81", "香港特别行政区", "HK", None, None),
    ("82", "澳门特别行政区", "MO", None, None),
)

PROVINCES: Mapping[str, Province] = MappingProxyType({row[0]: Province(*row) for row in _ROWS})

# ID numbers: every GB/T 2260 province-level code, plus 83, which is not a GB/T 2260
# code but the address code (830000) of residence permits for Taiwan residents
# (港澳台居民居住证, 2018; Hong Kong 810000, Macao 820000 share their GB/T 2260 codes).
ID_NUMBER_AREA_PREFIXES: frozenset[str] = frozenset({*PROVINCES, "83"})

PLATE_PROVINCE_CHARS: Mapping[str, Province] = MappingProxyType(
    {p.plate_char: p for p in PROVINCES.values() if p.plate_char}
)
CASE_ABBR_CHARS: Mapping[str, Province] = MappingProxyType(
    {p.case_char: p for p in PROVINCES.values() if p.case_char}
)


def province(code: str) -> Province:
    """The province with this two-digit GB/T 2260 code; KeyError if there is none."""
    return PROVINCES[code]
