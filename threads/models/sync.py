"""Bookkeeping of sync runs: what each run fetched, wrote and failed on."""

from django.db import models


class SyncRunKind(models.TextChoices):
    FULL = "full"
    INCREMENTAL = "incremental"
    SESSION = "session", "one session"
    THREAD = "thread", "one thread"


class SyncRunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    # Finished, but some records or sessions failed; `errors` lists which.
    PARTIAL = "partial"
    FAILED = "failed"


class SyncRun(models.Model):
    """One run of a sync service and its counts."""

    kind = models.CharField(max_length=16, choices=SyncRunKind.choices)
    status = models.CharField(
        max_length=16, choices=SyncRunStatus.choices, default=SyncRunStatus.RUNNING
    )
    # The session or thread id for the one-session and one-thread kinds.
    target_id = models.CharField(max_length=128, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    seen = models.IntegerField(default=0)
    created = models.IntegerField(default=0)
    updated = models.IntegerField(default=0)
    unchanged = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    api_calls = models.IntegerField(default=0)
    # A list of {"target": id, "error": type, "message": text, "request_id": id}, capped.
    errors = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return "%s sync #%s" % (self.kind, self.pk)

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()
