"""The controller (one broker of the cluster at a time, elected through ZooKeeper): the
leader election rules (election) and the controller itself (controller): election and
resignation, fenced partition-state writes, reaction to brokers and topics."""
