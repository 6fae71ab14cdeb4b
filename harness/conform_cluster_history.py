"""What clients were told during one example on a cluster, and the properties every answer
must keep with it, named after the spec's invariants (``spec.invariants``).

The candidate-set oracle (``harness.conform_cluster_oracle``) decides every answer; these
checks come on top, for two reasons: a divergence they find is named by the property it
breaks (a lost acknowledged write reads better than "no model state answers this"), and
they still hold an example to account after the oracle gave up on it (too many states).
They speak of observations only, so each is sound whatever the timing:

- **ConsistentRead** (and LogMatching, as consumers see it): a record a consumer read at an
  offset is the record every later read at that offset returns;
- **NoCommittedRecordLostGlobally** / **LeaderCompleteness**: a record acknowledged to an
  acks=all producer (min.insync.replicas of the ISR had it) is returned at its offset by
  every fetch whose answer reaches that offset;
- **BelowHighWatermark**: a fetch returns only records below the high watermark it reports;
- **OffsetsNeverReused**: a produce is never acknowledged at an offset a consumer already
  read or an acks=all producer was already told (committed offsets are never handed out
  again; an acks=1 write may be lost and its offset reused, as Kafka allows).
"""

from __future__ import annotations

from harness.conform_cluster_ops import FetchFrom, ProduceTo, PropertyBroken
from harness.conform_ops import FetchAnswer, Observation, ProduceAnswer
from spec.actions import ACKS_ALL
from spec.errors import ErrorCode
from spec.state import TopicPartition

Stored = tuple[bytes | None, bytes | None, int]
"""A record as compared here: key, value and partition leader epoch."""


class ClusterHistory:
    """Records read and acknowledged so far, per partition and offset."""

    def __init__(self) -> None:
        self.read: dict[tuple[TopicPartition, int], Stored] = {}
        self.acked: dict[tuple[TopicPartition, int], tuple[bytes | None, bytes]] = {}

    def check(self, op: object, observed: Observation) -> PropertyBroken | None:
        """The property ``observed`` breaks, if any; else remember what it told."""
        if isinstance(op, FetchFrom) and isinstance(observed, FetchAnswer):
            return self._fetch(op.tp, observed)
        if isinstance(op, ProduceTo) and isinstance(observed, ProduceAnswer):
            return self._produce(op, observed)
        return None

    def _committed_end(self, tp: TopicPartition) -> int:
        offsets = [o for (t, o) in (*self.read, *self.acked) if t == tp]
        return max(offsets) + 1 if offsets else 0

    def _fetch(self, tp: TopicPartition, answer: FetchAnswer) -> PropertyBroken | None:
        if answer.error != ErrorCode.NONE:
            return None
        for r in answer.records:
            if r.offset >= answer.high_watermark:
                return PropertyBroken(
                    "BelowHighWatermark",
                    f"offset {r.offset} was returned with high watermark {answer.high_watermark}",
                )
            before = self.read.get((tp, r.offset))
            now: Stored = (r.key, r.value, r.leader_epoch)
            if before is not None and before != now:
                return PropertyBroken(
                    "ConsistentRead",
                    f"offset {r.offset} read as {_text(now)}, earlier as {_text(before)}",
                )
            acked = self.acked.get((tp, r.offset))
            if acked is not None and acked != (r.key, r.value):
                return PropertyBroken(
                    "NoCommittedRecordLostGlobally",
                    f"offset {r.offset} holds {_text(now)}, but {_text((*acked, -1))} was "
                    "acknowledged there to an acks=all producer",
                )
        if answer.records:
            first, last = answer.records[0].offset, answer.records[-1].offset
            for (t, o), (k, v) in self.acked.items():
                if t == tp and first <= o <= last and all(r.offset != o for r in answer.records):
                    return PropertyBroken(
                        "NoCommittedRecordLostGlobally",
                        f"offset {o} ({_text((k, v, -1))}, acknowledged to an acks=all "
                        "producer) is missing from the answer",
                    )
        for r in answer.records:
            self.read[(tp, r.offset)] = (r.key, r.value, r.leader_epoch)
        return None

    def _produce(self, op: ProduceTo, answer: ProduceAnswer) -> PropertyBroken | None:
        for p in answer.partitions:
            if p.error != ErrorCode.NONE:
                continue
            end = self._committed_end(p.tp)
            if p.base_offset < end:
                return PropertyBroken(
                    "OffsetsNeverReused",
                    f"acknowledged at base offset {p.base_offset}, below offset {end}, up to "
                    "which records were committed (read by a consumer or acknowledged to an "
                    "acks=all producer)",
                )
            if op.acks == ACKS_ALL:
                for i, (k, v) in enumerate(op.records):
                    self.acked[(p.tp, p.base_offset + i)] = (k, v)
        return None


def _text(r: tuple[bytes | None, bytes | None, int]) -> str:
    k, v, epoch = r
    value = "null" if v is None else v.hex() or "''"
    key = "null" if k is None else k.hex() or "''"
    shown = value if k is None else f"{key}={value}"
    return shown + (f" (leader epoch {epoch})" if epoch >= 0 else "")
