"""kafkaref's Jepsen-style chaos experiments, run against clusters in Docker containers.

Jepsen's split, one module each: db (cluster lifecycle in containers), client, nemesis
(kill, pause, partition, restart), generator (the workload schedule), checker (the
harness's history checkers) and report.  It depends on ``harness``, never the other way.

Today: the images (``image_base``: debootstrap base; ``image``: wheelhouse and project
layer), the cluster in containers (``db``, with ``docker_util`` and ``docker_util_net``)
and ``kafkaref chaos build|clean`` (``cli``).  See docs/chaos.md.
"""
