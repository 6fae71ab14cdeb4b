"""The default partitioner: murmur2 as Kafka computes it, round robin, sticky (KIP-480)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.mock_cluster import LibrdkafkaUnavailableError, MockCluster
from spec.partitioner import RoundRobin, Sticky, murmur2, partition_for_key, to_positive

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

# Kafka's clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java, testMurmur2.
KAFKA_UTILS_TEST = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


def _int32(u: int) -> int:
    return u - (1 << 32) if u > INT32_MAX else u


# librdkafka's src/rdmurmur2.c unittest_murmur2, "java_murmur2_results": every tail length
# (1, 2, 3 trailing bytes) and the empty key.
LIBRDKAFKA_UNITTEST = [
    (b"kafka", _int32(0xD067CF64)),
    (b"giberish123456789", _int32(0x8F552B0C)),
    (b"1234", _int32(0x9FC97B14)),
    (b"234", _int32(0xE7C009CA)),
    (b"34", _int32(0x873930DA)),
    (b"4", _int32(0x5A4B5CA1)),
    (b"PreAmbleWillBeRemoved,ThePrePartThatIs", _int32(0x78424F1C)),
    (b"reAmbleWillBeRemoved,ThePrePartThatIs", _int32(0x4A62B377)),
    (b"eAmbleWillBeRemoved,ThePrePartThatIs", _int32(0xE0E4E09E)),
    (b"AmbleWillBeRemoved,ThePrePartThatIs", _int32(0x62B8B43F)),
    (b"", _int32(0x106E08D9)),
]


@pytest.mark.parametrize(("key", "expected"), KAFKA_UTILS_TEST + LIBRDKAFKA_UNITTEST)
def test_murmur2_matches_the_java_client(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_to_positive_clears_the_sign_bit_rather_than_negating() -> None:
    assert to_positive(-1) == INT32_MAX
    assert to_positive(INT32_MIN) == 0  # abs() would overflow in Java
    assert to_positive(-790332482) == 1357151166
    assert to_positive(479470107) == 479470107


def test_partition_for_key_known_partitions() -> None:
    # Observed from librdkafka's murmur2_random partitioner on a 101-partition topic.
    assert [partition_for_key(k, 101) for k in (b"21", b"foobar", b"x", b"abc")] == [
        20,
        26,
        48,
        79,
    ]
    assert partition_for_key(b"foobar", 10) == 1357151166 % 10 == 6
    assert partition_for_key(b"", 7) == 275646681 % 7
    assert partition_for_key(b"anything", 1) == 0


def test_partition_for_key_needs_a_partition() -> None:
    with pytest.raises(ValueError):
        partition_for_key(b"k", 0)


@given(st.binary(max_size=200), st.integers(1, 10_000))
def test_murmur2_is_an_int32_and_the_partition_is_in_range(key: bytes, n: int) -> None:
    h = murmur2(key)
    assert INT32_MIN <= h <= INT32_MAX
    assert partition_for_key(key, n) == (h & 0x7FFFFFFF) % n
    assert 0 <= partition_for_key(key, n) < n


def test_round_robin_cycles_per_topic() -> None:
    rr = RoundRobin()
    seen = []
    for topic in ["a", "a", "b", "a", "a", "b", "b", "b"]:
        p, rr = rr.next(topic, 3)
        seen.append((topic, p))
    assert seen == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("a", 2),
        ("a", 0),
        ("b", 1),
        ("b", 2),
        ("b", 0),
    ]
    assert rr.counters == {"a": 4, "b": 4}


def test_round_robin_uses_available_partitions_in_metadata_order() -> None:
    rr = RoundRobin()
    got = []
    for _ in range(5):
        p, rr = rr.next("t", 6, available=(5, 2))
        got.append(p)
    assert got == [5, 2, 5, 2, 5]


def test_round_robin_counter_wraps_like_a_java_int() -> None:
    rr = RoundRobin().next("t", 1)[1]
    rr = RoundRobin(rr.counters.set("t", INT32_MAX))
    p1, rr = rr.next("t", 10)
    assert p1 == INT32_MAX % 10 == 7
    assert rr.counters["t"] == INT32_MIN
    p2, rr = rr.next("t", 10)
    assert p2 == 0  # toPositive(Integer.MIN_VALUE) == 0
    assert rr.counters["t"] == INT32_MIN + 1


def test_round_robin_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        RoundRobin().next("t", 0)
    with pytest.raises(ValueError):
        RoundRobin().next("t", 3, available=(3,))
    with pytest.raises(ValueError):
        RoundRobin().next("t", 3, available=(1, 1))


def test_sticky_keeps_one_partition_until_its_batch_completes() -> None:
    s = Sticky()
    assert s.current("t") is None
    assert s.choices("t", 4) == (0, 1, 2, 3)
    p, s = s.partition("t", 4, choice=2)
    assert p == 2
    # Later records stick, whatever choice is passed.
    for _ in range(3):
        p, s = s.partition("t", 4, choice=0)
        assert p == 2
    # A new batch for another partition (a keyed record's) changes nothing.
    assert s.choices("t", 4, prev_partition=1) == ()
    assert s.on_new_batch("t", 4, prev_partition=1, choice=3) == s
    # A new batch for the sticky partition picks another available one.
    assert s.choices("t", 4, prev_partition=2, available=(0, 1, 2, 3)) == (0, 1, 3)
    s = s.on_new_batch("t", 4, prev_partition=2, choice=3, available=(0, 1, 2, 3))
    assert s.current("t") == 3
    assert s.partition("t", 4)[0] == 3


def test_sticky_topics_are_independent() -> None:
    _, s = Sticky().partition("a", 3, choice=1)
    _, s = s.partition("b", 5, choice=4)
    assert (s.current("a"), s.current("b")) == (1, 4)
    s = s.on_new_batch("a", 3, prev_partition=1, choice=0)
    assert (s.current("a"), s.current("b")) == (0, 4)


def test_sticky_choices_follow_partition_availability() -> None:
    _, s = Sticky().partition("t", 4, choice=1)
    # One available partition: that one, even if it is the current sticky one.
    assert s.choices("t", 4, prev_partition=1, available=(1,)) == (1,)
    # None available: any partition, the old one included.
    assert s.choices("t", 4, prev_partition=1) == (0, 1, 2, 3)
    # The old sticky partition unavailable: every available one.
    assert s.choices("t", 4, prev_partition=1, available=(3, 0)) == (3, 0)


def test_sticky_validates_the_choice() -> None:
    with pytest.raises(ValueError):
        Sticky().partition("t", 4)  # a pick is due and no choice given
    with pytest.raises(ValueError):
        Sticky().partition("t", 4, choice=4)
    with pytest.raises(ValueError):
        Sticky().partition("t", 4, choice=1, available=(0, 2))
    _, s = Sticky().partition("t", 4, choice=1)
    with pytest.raises(ValueError):
        s.on_new_batch("t", 4, prev_partition=1, choice=1, available=(0, 1))
    with pytest.raises(ValueError):
        Sticky().partition("t", 0, choice=0)


@given(st.integers(1, 8), st.data())
@settings(max_examples=50)
def test_sticky_new_partition_differs_when_it_can(n: int, data: st.DataObject) -> None:
    s = Sticky()
    p, s = s.partition("t", n, choice=data.draw(st.sampled_from(s.choices("t", n))))
    available = tuple(range(n))
    for _ in range(10):
        options = s.choices("t", n, prev_partition=p, available=available)
        assert options
        nxt = s.on_new_batch("t", n, p, data.draw(st.sampled_from(options)), available)
        new = nxt.current("t")
        assert new is not None
        assert 0 <= new < n
        assert new != p or n == 1
        p, s = new, nxt


# --- Cross-check with librdkafka's murmur2 partitioner on its in-process mock cluster. ---
#
# confluent-kafka's bundled librdkafka has a mock cluster (rdkafka_mock.h).  Its public C
# API can create a topic with any partition count; Python does not expose it, so
# harness.mock_cluster calls it through ctypes.  The producer then partitions keyed records
# with librdkafka's "murmur2_random" partitioner (the Java client's), and the delivery
# reports say where each record went.

MOCK_PARTITION_COUNTS = (1, 2, 3, 7, 12, 31, 101, 256, 1000)


class _MockCluster:
    """A librdkafka mock cluster with one broker and a topic per partition count."""

    def __init__(self) -> None:
        ck = pytest.importorskip("confluent_kafka")
        try:
            self._cluster = MockCluster(brokers=1)
        except LibrdkafkaUnavailableError as exc:
            pytest.skip(str(exc))
        self.bootstrap = self._cluster.bootstrap
        for n in MOCK_PARTITION_COUNTS:
            self._cluster.create_topic(f"p{n}", n)
        self.producer = ck.Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "partitioner": "murmur2_random",
                "linger.ms": 1,
                "log_level": 0,
            }
        )
        for n in MOCK_PARTITION_COUNTS:
            md = self.producer.list_topics(f"p{n}", timeout=10)
            assert len(md.topics[f"p{n}"].partitions) == n

    def partitions_of(self, topic: str, keys: list[bytes]) -> list[int]:
        """Produce one record per key; the partition librdkafka put each one in."""
        got: dict[int, int] = {}

        def delivered(err: object, msg: object, i: int) -> None:
            assert err is None, err
            got[i] = msg.partition()  # type: ignore[attr-defined]

        for i, key in enumerate(keys):
            self.producer.produce(
                topic, key=key, value=b"v", on_delivery=lambda e, m, i=i: delivered(e, m, i)
            )
        assert self.producer.flush(30) == 0, "librdkafka did not deliver within 30 s"
        assert len(got) == len(keys)
        return [got[i] for i in range(len(keys))]

    def close(self) -> None:
        self.producer.flush(10)
        del self.producer
        self._cluster.close()


@pytest.fixture(scope="module")
def librdkafka_mock() -> Iterator[_MockCluster]:
    cluster = _MockCluster()
    yield cluster
    cluster.close()


def test_librdkafka_mock_agrees_on_known_keys(librdkafka_mock: _MockCluster) -> None:
    keys = [k for k, _ in KAFKA_UTILS_TEST + LIBRDKAFKA_UNITTEST]  # the empty key too
    for n in MOCK_PARTITION_COUNTS:
        assert librdkafka_mock.partitions_of(f"p{n}", keys) == [
            partition_for_key(k, n) for k in keys
        ]


@given(
    n=st.sampled_from(MOCK_PARTITION_COUNTS),
    keys=st.lists(st.binary(max_size=64), min_size=1, max_size=50),
)
@settings(max_examples=40, derandomize=True, database=None, deadline=None)
def test_librdkafka_murmur2_partitioner_agrees(
    librdkafka_mock: _MockCluster, n: int, keys: list[bytes]
) -> None:
    """Random keys land where partition_for_key says, on topics of several sizes."""
    assert librdkafka_mock.partitions_of(f"p{n}", keys) == [partition_for_key(k, n) for k in keys]
