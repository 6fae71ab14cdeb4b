"""Member ids in the conformance harness's group rules: how slots name them.

Kafka names a member ``<group.instance.id or client.id>-<UUID>``, the spec
``<prefix>-<n>``; neither can appear in an operation (it must mean the same on a replay)
or in an observation (the target's and the model's must compare).  So each side keeps, per
slot, the member ids that slot was told, in order (learnt from the JoinGroup answers the
slot read: MEMBER_ID_REQUIRED or NONE), and a member id is written ``<prefix>.<index>``:
``m1.0`` is the first id slot 1 (client id ``m1``) was told, ``i2.1`` the second id of the
static member ``i2`` (slot 2); ``<prefix>.?`` is an id no member has read yet.  An
operation names a member id by its index (``NEW``: the empty id of a new member); an index
the slot was never told becomes an id no coordinator handed out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from spec.errors import ErrorCode

NEW = -1
"""The member index of a new member (empty member id)."""


def client_id(slot: int) -> str:
    return f"m{slot}"


def instance_id(slot: int) -> str:
    return f"i{slot}"


def id_prefix(slot: int, static: bool) -> str:
    """What Kafka puts before a member id's UUID: the instance id, else the client id."""
    return instance_id(slot) if static else client_id(slot)


def logical_id(prefix: str, index: int | None) -> str:
    return f"{prefix}.{'?' if index is None else index}"


def parse_logical_id(logical: str) -> tuple[int, int | None] | None:
    """(slot, index) of ``m1.0``/``i2.?``; None for anything else."""
    prefix, _, index = logical.partition(".")
    if len(prefix) < 2 or prefix[0] not in "mi" or not prefix[1:].isdigit():
        return None
    if index == "?":
        return int(prefix[1:]), None
    return (int(prefix[1:]), int(index)) if index.isdigit() else None


def _prefix(member_id: str) -> str:
    return member_id.split("-", 1)[0]


def to_logical(member_id: str, ids: Mapping[int, Iterable[str]]) -> str:
    """``member_id`` as ``<prefix>.<index>`` among the ids its slot was told."""
    if not member_id:
        return ""
    for values in ids.values():
        known = tuple(values)
        if member_id in known:
            return logical_id(_prefix(member_id), known.index(member_id))
    return logical_id(_prefix(member_id), None)


def from_logical(logical: str, ids: Mapping[int, Iterable[str]]) -> str:
    """The member id a logical id stands for (a made-up one if none)."""
    parsed = parse_logical_id(logical)
    if parsed is None:
        return logical
    slot, index = parsed
    known = tuple(ids.get(slot, ()))
    if index is not None and index < len(known):
        return known[index]
    return f"{logical.partition('.')[0]}-unknown-{index}"


def member_id_of(ids: Mapping[int, Iterable[str]], slot: int, member: int, static: bool) -> str:
    """The member id a request of ``slot`` carries for member index ``member``."""
    if member == NEW:
        return ""
    known = tuple(ids.get(slot, ()))
    if member < len(known):
        return known[member]
    return f"{id_prefix(slot, static)}-missing-{member}"


def learnt_id(raw: Any) -> str | None:
    """The member id a JoinGroup answer tells its member (NONE or MEMBER_ID_REQUIRED)."""
    error = getattr(raw, "error", None)
    member_id = getattr(raw, "member_id", "")
    if error in (ErrorCode.NONE, ErrorCode.MEMBER_ID_REQUIRED) and member_id:
        return str(member_id)
    return None


def learn(ids: dict[int, tuple[str, ...]], slot: int, member_id: str | None) -> None:
    if member_id is not None and member_id not in ids.get(slot, ()):
        ids[slot] = (*ids.get(slot, ()), member_id)
