"""librdkafka's in-process mock cluster, started through ctypes.

The confluent-kafka wheel bundles librdkafka, whose mock cluster (``rdkafka_mock.h``) is a
small Kafka-protocol broker set running on a thread of the calling process.  Python does
not expose it, so this module calls its C API directly: ``rd_kafka_mock_cluster_new``
needs an ``rd_kafka_t`` handle (made with ``rd_kafka_new``), ``_bootstraps`` gives the
address clients connect to, and ``rd_kafka_mock_topic_create`` makes topics (the mock
does not implement the CreateTopics request).

It is the peer ``kafkaref bench --compare mock`` measures against, and the test suite uses
it to cross-check behaviour with librdkafka.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
from pathlib import Path
from types import TracebackType

_RD_KAFKA_PRODUCER = 0
_ERRSTR_SIZE = 512


class LibrdkafkaUnavailableError(RuntimeError):
    """confluent-kafka, or the librdkafka bundled in its wheel, cannot be found."""


class MockClusterError(RuntimeError):
    """The mock cluster refused an operation (librdkafka's error code in the message and
    in ``code``: for positive values, Kafka's error code)."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def bundled_librdkafka() -> Path:
    """The path of the librdkafka shared library inside the installed confluent-kafka wheel."""
    spec = importlib.util.find_spec("confluent_kafka")
    if spec is None or spec.origin is None:
        raise LibrdkafkaUnavailableError("confluent-kafka is not installed")
    package = Path(spec.origin).parent
    patterns = (
        (package.parent / "confluent_kafka.libs", "librdkafka*.so*"),  # Linux (auditwheel)
        (package / ".dylibs", "librdkafka*.dylib"),  # macOS (delocate)
    )
    for folder, pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            return found[0]
    raise LibrdkafkaUnavailableError(f"no bundled librdkafka next to {package}")


@functools.cache
def _librdkafka() -> ctypes.CDLL:
    """Load the bundled librdkafka once, with the signatures of the functions used here."""
    lib = ctypes.CDLL(str(bundled_librdkafka()))
    vp, cp = ctypes.c_void_p, ctypes.c_char_p
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_new.argtypes = []
    lib.rd_kafka_conf_set.restype = ctypes.c_int
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, ctypes.c_size_t]
    lib.rd_kafka_conf_destroy.argtypes = [vp]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ctypes.c_int, vp, cp, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ctypes.c_int, ctypes.c_int]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.restype = None
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [vp, ctypes.c_int32]
    lib.rd_kafka_err2str.restype = cp
    lib.rd_kafka_err2str.argtypes = [ctypes.c_int]
    lib.rd_kafka_version_str.restype = cp
    lib.rd_kafka_version_str.argtypes = []
    return lib


def librdkafka_version() -> str:
    """The version of the bundled librdkafka (``rd_kafka_version_str``), e.g. ``2.16.0``."""
    text: bytes = _librdkafka().rd_kafka_version_str()
    return text.decode()


class MockCluster:
    """A running librdkafka mock cluster with ``brokers`` brokers (ids 1..brokers).

    Use as a context manager, or call ``close``; the cluster's thread and sockets live
    until then.
    """

    def __init__(self, brokers: int = 1) -> None:
        if brokers < 1:
            raise ValueError("a mock cluster needs at least one broker")
        lib = _librdkafka()
        errstr = ctypes.create_string_buffer(_ERRSTR_SIZE)
        conf = lib.rd_kafka_conf_new()
        # The handle only hosts the cluster: it sends nothing, so keep its logs quiet.
        lib.rd_kafka_conf_set(conf, b"log_level", b"0", errstr, _ERRSTR_SIZE)
        rk = lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, _ERRSTR_SIZE)
        if not rk:  # rd_kafka_new keeps conf only when it succeeds
            lib.rd_kafka_conf_destroy(conf)
            raise MockClusterError(f"rd_kafka_new failed: {errstr.value.decode()}")
        mcluster = lib.rd_kafka_mock_cluster_new(rk, brokers)
        if not mcluster:
            lib.rd_kafka_destroy(rk)
            raise MockClusterError("rd_kafka_mock_cluster_new failed")
        self._lib: ctypes.CDLL | None = lib
        self._rk: int = rk
        self._mcluster: int = mcluster
        self.brokers = brokers
        self.bootstrap: str = lib.rd_kafka_mock_cluster_bootstraps(mcluster).decode()
        """Comma-separated HOST:PORT of every mock broker, for ``bootstrap.servers``."""

    def create_topic(self, name: str, partitions: int, replication_factor: int = 1) -> None:
        """Create ``name`` with ``partitions`` partitions (the mock's own call, not a request)."""
        err = self._live().rd_kafka_mock_topic_create(
            self._mcluster, name.encode(), partitions, replication_factor
        )
        if err != 0:
            raise MockClusterError(f"creating topic {name!r}: {self._err2str(err)}", err)

    def set_group_initial_rebalance_delay_ms(self, delay_ms: int) -> None:
        """The mock's ``group.initial.rebalance.delay.ms`` (3000 by default, as Kafka's)."""
        self._live().rd_kafka_mock_group_initial_rebalance_delay_ms(self._mcluster, delay_ms)

    def close(self) -> None:
        """Stop the cluster and free its handle (idempotent)."""
        lib, self._lib = self._lib, None
        if lib is not None:
            lib.rd_kafka_mock_cluster_destroy(self._mcluster)
            lib.rd_kafka_destroy(self._rk)

    def __enter__(self) -> MockCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _live(self) -> ctypes.CDLL:
        if self._lib is None:
            raise MockClusterError("the mock cluster is closed")
        return self._lib

    def _err2str(self, err: int) -> str:
        text: bytes = self._live().rd_kafka_err2str(err)
        return f"{text.decode()} (librdkafka error {err})"
