"""Known-bad variants of the model, by name.

Each is a deliberate departure from Kafka's rules that an invariant must catch; the
explorer selects them with ``--variant NAME``.  The correct model switches none on.
"""

from __future__ import annotations

import enum


class Variant(enum.StrEnum):
    """A named defect in the model (``kafkaref explore --variant NAME``)."""

    TRUNCATE_TO_HIGH_WATERMARK = "truncate-to-high-watermark"
    """A follower truncates to its own high watermark instead of asking the leader by leader
    epoch (Kafka before KIP-101): a committed record can be lost after two failures."""

    UNCLEAN_LEADER_ELECTION = "unclean-leader-election"
    """The controller may elect any live replica, in the ISR or not, although
    unclean.leader.election.enable is off: acknowledged records can disappear."""

    HW_ADVANCE_WITHOUT_ISR = "hw-advance-without-isr"
    """The leader advances the high watermark to its own log end offset without waiting for
    the ISR: consumers can read records that a failover later removes."""

    ACK_BEFORE_ISR = "ack-before-isr"
    """acks=all is acknowledged as soon as the leader has appended, before the ISR has the
    record: an acknowledged record can be lost when the leader fails."""

    EXPAND_ISR_BEFORE_CAUGHT_UP = "expand-isr-before-caught-up"
    """The leader adds a follower to the ISR before it has caught up to the high watermark
    and the start of the leader's epoch (the KAFKA-7128 condition): an ISR member can miss
    committed records and then be elected."""
