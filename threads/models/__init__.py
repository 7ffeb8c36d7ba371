from threads.models.archive import (
    ArchiveAuditEntry,
    ArchiveItem,
    ArchiveItemState,
    ArchiveJob,
    ArchiveJobScope,
    ArchiveJobStatus,
    ArchiveOutcome,
)
from threads.models.rate_limit import RateLimitBucket
from threads.models.snapshots import (
    AgentType,
    Session,
    SnapshotStatus,
    Thread,
)
from threads.models.sync import SyncRun, SyncRunKind, SyncRunStatus
from threads.models.usage import UsageDailyRollup, UsageRollupDirtyDay, UsageSessionDayRollup

__all__ = [
    "AgentType",
    "ArchiveAuditEntry",
    "ArchiveItem",
    "ArchiveItemState",
    "ArchiveJob",
    "ArchiveJobScope",
    "ArchiveJobStatus",
    "ArchiveOutcome",
    "RateLimitBucket",
    "Session",
    "SnapshotStatus",
    "SyncRun",
    "SyncRunKind",
    "SyncRunStatus",
    "Thread",
    "UsageDailyRollup",
    "UsageRollupDirtyDay",
    "UsageSessionDayRollup",
]
