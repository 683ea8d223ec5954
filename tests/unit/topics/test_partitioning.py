"""The bus's murmur2 equals Kafka's (kafka-python's reference implementation and the
Java client's published test vectors)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as reference

from topics.partitioning import KeyPartitions, murmur2, partition_of


@given(st.binary(max_size=80))
def test_murmur2_equals_kafkas(data: bytes) -> None:
    assert murmur2(data) == reference(data) & 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "expected"),
    [  # org.apache.kafka.common.utils.UtilsTest#testMurmur2
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
    ],
)
def test_java_client_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected & 0xFFFFFFFF


@given(st.binary(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_key_partitions_remember_and_agree(key: bytes, partitions: int) -> None:
    placed = KeyPartitions(partitions, remember=2)
    expected = partition_of(key, partitions)
    assert placed(key) == placed(key) == expected
    for other in (b"x", b"y", b"z"):  # a full memory is forgotten, never wrong
        placed(other)
    assert placed(key) == expected


def test_partition_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="partitions 0"):
        KeyPartitions(0)
