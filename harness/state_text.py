"""A compact, human-readable description of a cluster model state, in Kafka's terms.

Used where a person has to understand a state at a glance (the end of a counterexample
trace): the controller, what producers were told and what consumers could read, then per
partition the ZooKeeper partition state and one line per replica with its broker's
status, the role it believes it has, its log (``offset:value@leader-epoch``), high
watermark and log end offset.
"""

from __future__ import annotations

from collections.abc import Iterable

from spec.log import Log, Record
from spec.state import NO_LEADER, ClusterState, Partition, Replica


def describe_state(s: ClusterState, *, recovery_points: bool = False) -> list[str]:
    """The lines describing ``s``; with ``recovery_points``, each log also shows the offset
    below which it is flushed to disk (what a power loss keeps)."""
    lines = [_controller(s)]
    if s.acked:
        lines.append("acknowledged to acks=all producers: " + _acked(s))
    if s.pending:
        lines.append("delayed produces waiting: " + _pending(s))
    for tp, records in sorted(s.exposed.items()):
        if records:
            lines.append(f"exposed to consumers from {tp}: {_records(0, records)}")
    for tp, part in sorted(s.partitions.items()):
        lines.append(f"{tp}: {_zk(part)}")
        rows = [_replica_row(s, b, part.replica[b], recovery_points) for b in part.replicas]
        lines.extend("  " + row for row in _aligned(rows))
    return lines


def record_text(offset: int, r: Record) -> str:
    """``offset:value@leader-epoch``; a value that is not plain text is shown as bytes."""
    return f"{offset}:{_value(r.value)}@{r.leader_epoch}"


def _value(v: bytes) -> str:
    text = v.decode("utf-8", "replace")
    if text and text.isprintable() and " " not in text and text.encode() == v:
        return text
    return repr(v)


def _records(start: int, records: Iterable[Record]) -> str:
    shown = [record_text(start + i, r) for i, r in enumerate(records)]
    return " ".join(shown) if shown else "(empty)"


def _controller(s: ClusterState) -> str:
    if s.controller == NO_LEADER:
        return f"controller: none (controller epoch {s.controller_epoch})"
    live = "" if s.is_live(s.controller) else ", no longer registered"
    return f"controller: broker {s.controller}{live} (controller epoch {s.controller_epoch})"


def _acked(s: ClusterState) -> str:
    acked = sorted(s.acked, key=lambda a: (a.tp, a.offset))
    return ", ".join(f"{a.tp} {record_text(a.offset, a.record)}" for a in acked)


def _pending(s: ClusterState) -> str:
    return ", ".join(
        f"#{p.request_id} on broker {p.broker} for {p.tp} offsets {p.base_offset}..{p.last_offset}"
        for p in s.pending
    )


def _zk(part: Partition) -> str:
    z = part.zk
    leader = "none" if z.leader == NO_LEADER else str(z.leader)
    return (
        f"ZooKeeper says leader {leader}, leader epoch {z.leader_epoch}, "
        f"ISR {_brokers(z.isr)} (replicas {list(part.replicas)})"
    )


def _brokers(ids: Iterable[int]) -> str:
    return "[" + ", ".join(str(b) for b in sorted(ids)) + "]"


def _role(b: int, rep: Replica) -> str:
    k = rep.known
    if k is None:
        return "knows no leader"
    if k.leader == b:
        return f"leader in epoch {k.leader_epoch}, ISR {_brokers(k.isr)}"
    if k.leader == NO_LEADER:
        return f"no leader in epoch {k.leader_epoch}"
    pending = "" if rep.truncated else ", yet to truncate"
    return f"follower of {k.leader} in epoch {k.leader_epoch}{pending}"


def _log(log: Log, recovery_points: bool) -> str:
    text = "log " + _records(log.start_offset, log.records)
    if log.start_offset > 0:
        text += f" (log start {log.start_offset})"
    if recovery_points:
        text += f" (recovery point {log.recovery_point})"
    return text


def _replica_row(s: ClusterState, b: int, rep: Replica, recovery_points: bool) -> list[str]:
    up = "up" if s.is_up(b) else "down"
    registered = "registered" if s.is_live(b) else "unregistered"
    return [
        f"broker {b}",
        f"{up}, {registered}",
        _role(b, rep),
        _log(rep.log, recovery_points),
        f"HW {rep.high_watermark}",
        f"LEO {rep.log_end_offset}",
    ]


def _aligned(rows: list[list[str]]) -> list[str]:
    """Rows of cells, each column padded to its widest cell."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
