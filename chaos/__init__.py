"""kafkaref's Jepsen-style chaos experiments, run against clusters in Docker containers.

Jepsen's split, one module each: db (cluster lifecycle in containers), client, nemesis
(kill, pause, partition, restart), generator (the workload schedule), checker (the
harness's history checkers) and report.  It depends on ``harness``, never the other way.

Being built: this package is empty for now.
"""
