from threads.models.rate_limit import RateLimitBucket
from threads.models.snapshots import (
    AgentType,
    Session,
    SnapshotStatus,
    Thread,
)
from threads.models.sync import SyncRun, SyncRunKind, SyncRunStatus

__all__ = [
    "AgentType",
    "RateLimitBucket",
    "Session",
    "SnapshotStatus",
    "SyncRun",
    "SyncRunKind",
    "SyncRunStatus",
    "Thread",
]
