"""kafkaref's harness: it holds any Kafka-protocol cluster to the specification in ``spec``.

It talks to a cluster only through the Kafka wire protocol (never through broker
internals), runs model-based tests with ``spec`` as the oracle, checks histories for
Jepsen's anomalies, launches a local cluster, and provides the ``kafkaref`` command line.

Being built: so far it holds only the command line and its ``explore`` command.
"""
