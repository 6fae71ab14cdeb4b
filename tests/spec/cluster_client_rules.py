"""The client rules of the cluster property machine (``ClusterMachine`` in
test_cluster_properties.py): produce with every acks setting, idempotent produce (next
batch, retry, gap, old sequence), a consumer's Fetch, ListOffsets and
OffsetForLeaderEpoch, and answering delayed acks=all produces.  Each rule checks the
reply against the state the request was sent in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from spec.actions import (
    ACKS_ALL,
    ACKS_LEADER,
    ACKS_NONE,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    Action,
    CompleteProduce,
    Fetch,
    ListOffsets,
    OffsetForLeaderEpoch,
    Produce,
    ProducedRecord,
)
from spec.consume import FetchReply, OffsetReply
from spec.errors import ErrorCode
from spec.outcome import Outcome, Rejected
from spec.produce import NO_OFFSET, ProduceReply, ProduceResponse
from spec.state import ClusterState, TopicPartition
from tests.spec.cluster_helpers import TIMEOUT_MS, leaders


class ClientRules:
    """A mixin of ``ClusterMachine``'s client rules.  The machine provides the state ``s``,
    ``apply`` (step the model and check the step), the count of ``values`` written so far
    and the idempotent producers' bookkeeping, ``producers``."""

    s: ClusterState
    values: int
    producers: dict[tuple[int, TopicPartition], tuple[int, tuple[int, tuple[bytes, ...]]]]
    apply: Callable[[Action], Outcome[ClusterState, Any]]

    # -- clients ----------------------------------------------------------------------

    def target(self, data: st.DataObject) -> tuple[TopicPartition, int]:
        """A partition and a broker: mostly one that presumes leadership, else any."""
        lead = leaders(self.s)
        if lead and data.draw(st.integers(0, 4), label="to-leader") > 0:
            tp, b, _ = data.draw(st.sampled_from(lead), label="leader")
            return tp, b
        tp = data.draw(st.sampled_from(sorted(self.s.partitions)), label="tp")
        b = data.draw(st.sampled_from(sorted(self.s.brokers)), label="broker")
        return tp, b

    def fresh_records(self, data: st.DataObject) -> tuple[ProducedRecord, ...]:
        n = data.draw(st.integers(1, 3), label="records")
        out = []
        for _ in range(n):
            key = data.draw(st.none() | st.binary(min_size=1, max_size=3), label="key")
            pad = data.draw(st.binary(max_size=4), label="value")
            self.values += 1
            out.append(ProducedRecord(str(self.values).encode() + pad, key))
        return tuple(out)

    @precondition(lambda self: len(self.s.partitions) > 0)
    @rule(
        data=st.data(),
        acks=st.sampled_from([ACKS_NONE, ACKS_LEADER, ACKS_ALL]),
        timeout=st.sampled_from([100, TIMEOUT_MS]),
    )
    def produce(self, data: st.DataObject, acks: int, timeout: int) -> None:
        tp, b = self.target(data)
        records = self.fresh_records(data)
        rep = self.s.replica(tp, b)
        leo = rep.log.end_offset if rep is not None else -1
        out = self.apply(Produce(tp, b, records, acks=acks, timeout_ms=timeout))
        if isinstance(out, Rejected):
            return
        reply = out.reply
        assert isinstance(reply, ProduceReply)
        written = out.state.partitions[tp].replica[b].log
        assert written.end_offset == leo + len(records)
        stored = [(r.key, r.value) for r in written.read(leo, written.end_offset)]
        assert stored == [(r.key, r.value) for r in records]
        if acks == ACKS_NONE:
            assert reply.base_offset == NO_OFFSET
            assert reply.pending is None
        elif acks == ACKS_LEADER:
            assert reply.base_offset == leo
            assert reply.pending is None
        else:
            assert reply.base_offset == NO_OFFSET
            assert reply.pending is not None
            assert any(p.request_id == reply.pending for p in out.state.pending)

    @precondition(lambda self: len(self.s.partitions) > 0)
    @rule(
        data=st.data(),
        pid=st.sampled_from([1, 2]),
        mode=st.sampled_from(["next", "next", "retry", "gap", "old"]),
        acks=st.sampled_from([ACKS_LEADER, ACKS_ALL]),
    )
    def idempotent_produce(self, data: st.DataObject, pid: int, mode: str, acks: int) -> None:
        tp, b = self.target(data)
        nxt, (last_seq, last_values) = self.producers.get((pid, tp), (0, (-1, ())))
        if mode == "retry" and last_values:
            seq, values = last_seq, last_values
        else:
            if mode == "gap":
                seq = nxt + data.draw(st.integers(1, 4), label="gap")
            elif mode == "old":
                seq = max(nxt - 1, 0)
            else:
                seq = nxt
            values = tuple(r.value for r in self.fresh_records(data))
        records = tuple(ProducedRecord(v) for v in values)
        rep = self.s.replica(tp, b)
        leo = rep.log.end_offset if rep is not None else -1
        action = Produce(
            tp, b, records, acks=acks, producer_id=pid, producer_epoch=0, base_sequence=seq
        )
        out = self.apply(action)
        if isinstance(out, Rejected):
            return
        log = out.state.partitions[tp].replica[b].log
        reply = out.reply
        assert isinstance(reply, ProduceReply)
        if log.end_offset == leo + len(records):
            self.producers[(pid, tp)] = (seq + len(records), (seq, values))
            return
        # Nothing appended: a duplicate (same producer, epoch and sequence range as a
        # batch the leader holds), answered with that batch's original offset.
        assert log.end_offset == leo
        if acks == ACKS_ALL:
            # Answered once the original is committed, like the original (DelayedProduce).
            assert reply.base_offset == NO_OFFSET
            req = next(p for p in out.state.pending if p.request_id == reply.pending)
            assert req.last_offset - req.base_offset == len(values) - 1
            base = req.base_offset
        else:
            base = reply.base_offset
        assert base >= 0
        for i, value in enumerate(values):
            if base + i < log.start_offset:
                continue  # retention deleted it; the producer state remembers it
            stored = log.record_at(base + i)
            assert stored is not None
            assert (stored.producer_id, stored.sequence) == (pid, seq + i)
            if mode == "retry":
                assert stored.value == value

    @precondition(lambda self: len(self.s.partitions) > 0)
    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        """A consumer's Fetch, ListOffsets and OffsetForLeaderEpoch to one broker."""
        tp, b = self.target(data)
        self.fetch(data, tp, b)
        self.list_offsets(data, tp, b)
        self.offset_for_leader_epoch(data, tp, b)

    def fetch(self, data: st.DataObject, tp: TopicPartition, b: int) -> None:
        rep = self.s.replica(tp, b)
        log = rep.log if rep is not None else None
        anchors = [-1, 0, 1, 5]
        if rep is not None and log is not None:
            anchors += [
                log.start_offset - 1,
                log.start_offset,
                rep.high_watermark,
                log.end_offset,
                log.end_offset + 1,
            ]
        offset = data.draw(st.sampled_from(anchors) | st.integers(-3, 30), label="offset")
        epoch = -1
        if rep is not None and rep.known is not None:
            known = rep.known.leader_epoch
            epoch = data.draw(st.sampled_from([-1, -1, known, known - 1, known + 1]), label="ep")
        max_records = data.draw(st.sampled_from([1 << 30, 1, 2]), label="max")
        out = self.apply(Fetch(tp, b, offset, current_leader_epoch=epoch, max_records=max_records))
        if rep is None or log is None:
            assert isinstance(out, Rejected)
            return
        if isinstance(out, Rejected):
            if out.error is ErrorCode.OFFSET_OUT_OF_RANGE:
                assert offset < log.start_offset or offset > log.end_offset
            return
        reply = out.reply
        assert isinstance(reply, FetchReply)
        assert rep.presumes_leadership(b)
        assert log.start_offset <= offset <= log.end_offset
        assert reply.high_watermark == rep.high_watermark
        assert reply.log_start_offset == log.start_offset
        assert reply.records == log.read(offset, rep.high_watermark)[:max_records]
        assert offset + len(reply.records) <= rep.high_watermark or not reply.records

    def list_offsets(self, data: st.DataObject, tp: TopicPartition, b: int) -> None:
        ts = data.draw(
            st.sampled_from([EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, 0, self.s.now])
            | st.integers(0, self.s.now + 100),
            label="timestamp",
        )
        out = self.apply(ListOffsets(tp, b, ts))
        if isinstance(out, Rejected):
            return
        rep = out.state.partitions[tp].replica[b]
        reply = out.reply
        assert isinstance(reply, OffsetReply)
        if ts == EARLIEST_TIMESTAMP:
            assert reply.offset == rep.log.start_offset
        elif ts == LATEST_TIMESTAMP:
            assert reply.offset == rep.high_watermark
        else:
            committed = rep.log.read(rep.log.start_offset, rep.high_watermark)
            earlier = [r for r in committed if r.timestamp < ts]
            if reply.offset == -1:
                assert len(earlier) == len(committed)
            else:
                found = rep.log.record_at(reply.offset)
                assert found is not None
                assert reply.offset < rep.high_watermark
                assert found.timestamp >= ts
                assert reply.leader_epoch == found.leader_epoch
                assert all(
                    r.timestamp < ts for r in rep.log.read(rep.log.start_offset, reply.offset)
                )

    def offset_for_leader_epoch(self, data: st.DataObject, tp: TopicPartition, b: int) -> None:
        epoch = data.draw(st.integers(-1, 6), label="epoch")
        out = self.apply(OffsetForLeaderEpoch(tp, b, epoch))
        if isinstance(out, Rejected):
            return
        log = out.state.partitions[tp].replica[b].log
        answer, end = log.end_offset_for_epoch(epoch)
        assert out.reply == OffsetReply(end, answer)
        assert end <= log.end_offset

    @precondition(lambda self: len(self.s.pending) > 0)
    @rule(data=st.data())
    def complete_produce(self, data: st.DataObject) -> None:
        req = data.draw(st.sampled_from(self.s.pending), label="request")
        out = self.apply(CompleteProduce(req.request_id))
        if isinstance(out, Rejected):
            assert out.error is ErrorCode.REQUEST_TIMED_OUT  # not due yet
            return
        reply = out.reply
        assert isinstance(reply, ProduceResponse)
        assert all(p.request_id != req.request_id for p in out.state.pending)
        if reply.error is ErrorCode.NONE:
            assert reply.base_offset == req.base_offset
        else:
            assert reply.base_offset == NO_OFFSET
