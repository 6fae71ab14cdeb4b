"""The group coordinator: consumer-group membership (JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, ListGroups, DescribeGroups) and committed offsets (FindCoordinator,
OffsetCommit, OffsetFetch), with group metadata and offsets kept as records in the
internal topic ``__consumer_offsets``."""
