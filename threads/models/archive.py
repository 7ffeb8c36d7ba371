"""Archive jobs: which threads a user asked to archive, and what happened to each.

A job freezes its set of threads when the user confirms: one ArchiveItem per thread,
created then and never added to, so a thread created later is never touched. The
job's live counts are derived from its items' states; the count columns on the job
are written once all items are final.
"""

from django.conf import settings
from django.db import models


class ArchiveJobStatus(models.TextChoices):
    # Confirmed; nothing is sent before `grace_until`, and Cancel still sends nothing.
    SCHEDULED = "scheduled"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class ArchiveJobScope(models.TextChoices):
    SELECTED = "selected", "selected threads"
    FILTER = "filter", "all threads matching a filter"


class ArchiveJob(models.Model):
    """One request to archive a frozen set of threads, and its progress."""

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    scope = models.CharField(max_length=16, choices=ArchiveJobScope.choices)
    # The selection as the user gave it: thread ids for SELECTED, query parameters for FILTER.
    selected_ids = models.JSONField(default=list, blank=True)
    filter_query = models.JSONField(default=dict, blank=True)
    interrupt_running = models.BooleanField(default=False)

    status = models.CharField(
        max_length=16, choices=ArchiveJobStatus.choices, default=ArchiveJobStatus.SCHEDULED, db_index=True
    )
    grace_until = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    # Frozen at confirm time from the snapshots.
    total_count = models.IntegerField(default=0)
    planned_count = models.IntegerField(default=0)
    # {currency: amount in minor units} over the threads planned for archiving.
    list_cost_totals = models.JSONField(default=dict, blank=True)
    total_tokens = models.BigIntegerField(default=0)

    # Written from the items when the job finishes; live pages aggregate the items instead.
    archived_count = models.IntegerField(default=0)
    skipped_count = models.IntegerField(default=0)
    failed_count = models.IntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return "archive job #%s" % self.pk

    @property
    def is_finished(self) -> bool:
        return self.finished_at is not None


class ArchiveItemState(models.TextChoices):
    PENDING = "pending"
    IN_PROGRESS = "in_progress", "in progress"
    ARCHIVED = "archived"
    SKIPPED = "skipped"
    FAILED = "failed"


FINAL_ITEM_STATES = (ArchiveItemState.ARCHIVED, ArchiveItemState.SKIPPED, ArchiveItemState.FAILED)
OPEN_ITEM_STATES = (ArchiveItemState.PENDING, ArchiveItemState.IN_PROGRESS)


class ArchiveItem(models.Model):
    """One thread of an archive job and the outcome of archiving it."""

    job = models.ForeignKey(ArchiveJob, on_delete=models.CASCADE, related_name="items")
    thread_id = models.CharField(max_length=128)
    session_id = models.CharField(max_length=128)
    # Copied from the snapshot at confirm time; a 409 on such a thread means its run is open.
    workflow_run_id = models.CharField(max_length=128, null=True, blank=True)
    agent_label = models.CharField(max_length=512, blank=True, default="")
    # The snapshot showed the thread running and the job asked to interrupt such threads.
    interrupt_first = models.BooleanField(default=False)

    state = models.CharField(
        max_length=16, choices=ArchiveItemState.choices, default=ArchiveItemState.PENDING
    )
    attempts = models.IntegerField(default=0)
    # Why the item was skipped or failed, in words a user can act on.
    reason = models.TextField(blank=True, default="")
    already_archived = models.BooleanField(default=False)
    last_error_type = models.CharField(max_length=128, blank=True, default="")
    last_error_message = models.TextField(blank=True, default="")
    last_request_id = models.CharField(max_length=128, blank=True, default="")

    # When a task for this item was last sent to the broker, and when it is due to run.
    queued_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    interrupted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "thread_id"], name="archive_item_job_thread_unique"),
        ]
        indexes = [
            models.Index(fields=["job", "state"], name="archive_item_job_state"),
            models.Index(fields=["state", "claimed_at"], name="archive_item_state_claimed"),
        ]

    def __str__(self) -> str:
        return "%s in job #%s" % (self.thread_id, self.job_id)

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_ITEM_STATES


class ArchiveOutcome(models.TextChoices):
    ARCHIVED = "archived"
    ALREADY_ARCHIVED = "already_archived", "already archived"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"
    GONE = "gone", "gone upstream"
    FAILED = "failed"


class ArchiveAuditEntry(models.Model):
    """Record of one archive outcome: the user, the thread, the time and the API's request id."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(ArchiveJob, on_delete=models.CASCADE, related_name="audit_entries")
    thread_id = models.CharField(max_length=128, db_index=True)
    session_id = models.CharField(max_length=128)
    outcome = models.CharField(max_length=32, choices=ArchiveOutcome.choices)
    message = models.TextField(blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "archive audit entries"

    def __str__(self) -> str:
        return "%s %s" % (self.outcome, self.thread_id)
