"""kafkaref's executable specification of Apache Kafka's core semantics.

Everything under ``spec`` is a pure function over immutable state: no I/O, no clock,
no randomness.  Time is an explicit tick.  A transition takes a state and an action and
returns an :class:`~spec.outcome.Outcome`: the next state with what the caller observes,
or a rejection carrying Kafka's error name.  Transitions never raise on an action that is
invalid in the state.
"""
