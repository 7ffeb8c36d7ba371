"""Daily usage rollups: thread usage summed per UTC day of creation and filter key, and per session.

The usage page sums these rows instead of the thread table whenever its filter can
be expressed on the key columns. A rollup row is derived data: it is recomputed
from the thread snapshots (threads/services/usage_rollup.py) and never edited.
Both rollup tables share the dirty-day marks, so one refresh keeps both exact.
"""

from datetime import UTC

from django.db import models
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver


class UsageDailyRollup(models.Model):
    """Sums over the threads created on one UTC day that share every key column.

    Key columns keep the thread columns' names and nulls, so the same filter and
    grouping expressions run on both tables. Sums follow the thread columns: a sum
    is null when no thread in the row reported the figure.
    """

    day = models.DateField()
    agent_id = models.CharField(max_length=128, null=True)
    agent_name = models.CharField(max_length=512, null=True)
    agent_type = models.CharField(max_length=64)
    model = models.CharField(max_length=128, null=True)
    status = models.CharField(max_length=64)
    is_archived = models.BooleanField()
    is_primary = models.BooleanField()

    thread_count = models.BigIntegerField()
    usage_unknown_count = models.BigIntegerField()
    cost_unknown_count = models.BigIntegerField()
    input_tokens = models.BigIntegerField(null=True)
    output_tokens = models.BigIntegerField(null=True)
    cache_read_input_tokens = models.BigIntegerField(null=True)
    cache_creation_5m_input_tokens = models.BigIntegerField(null=True)
    cache_creation_1h_input_tokens = models.BigIntegerField(null=True)
    # Tokens of every kind over the threads with usage known.
    total_tokens = models.BigIntegerField(null=True)
    # Minor units of USD over the threads whose cost is known and in USD.
    list_cost_amount = models.BigIntegerField(null=True)
    active_seconds = models.FloatField(null=True)

    class Meta:
        constraints = [
            # NOTE: null key values count as distinct here, so this does not stop two
            # rows that differ only in where their nulls are. The refresh writes one
            # row per GROUP BY group, which treats nulls as equal, so it never does.
            models.UniqueConstraint(
                fields=[
                    "day",
                    "agent_id",
                    "agent_name",
                    "agent_type",
                    "model",
                    "status",
                    "is_archived",
                    "is_primary",
                ],
                name="usage_rollup_key",
            ),
        ]

    def __str__(self) -> str:
        return "%s %s %s" % (self.day, self.agent_id or self.agent_name or "-", self.model or "-")


class UsageSessionDayRollup(models.Model):
    """Sums over one session's threads created on one UTC day.

    The usage page's session figures read these rows when the filter selects by
    creation date alone: the sessions with a thread created in the period, and the
    sums over all threads of those sessions. Sums follow the thread columns and are
    null when no thread in the row reported the figure.
    """

    day = models.DateField()
    session_id = models.CharField(max_length=128)
    thread_count = models.BigIntegerField()
    cost_unknown_count = models.BigIntegerField()
    # Tokens of every kind over the threads with usage known.
    total_tokens = models.BigIntegerField(null=True)
    # Minor units of USD over the threads whose cost is known and in USD.
    list_cost_amount = models.BigIntegerField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "session_id"], name="usage_session_day_key"),
        ]
        indexes = [models.Index(fields=["session_id", "day"], name="usage_session_day_session")]

    def __str__(self) -> str:
        return "%s %s" % (self.day, self.session_id)


class UsageRollupDirtyDay(models.Model):
    """A UTC day whose rollup rows may be stale because a thread created that day changed.

    Writers upsert the day in the transaction that changes the thread, and the
    refresh deletes it in the transaction that recomputes the day, so a day is clean
    only when its rollup rows include every committed thread change.
    """

    day = models.DateField(unique=True)
    marked_at = models.DateTimeField()

    def __str__(self) -> str:
        return str(self.day)


# Thread rows saved or deleted one at a time through the ORM (the admin, factories,
# shell fixes) mark their days here. Batched writers bypass these signals and mark
# days themselves (threads/services/snapshot_write.py). `QuerySet.update()` bypasses
# them too, so a caller that changes a column the rollups sum or group by must call
# `usage_rollup_mark_dirty` in the same transaction.
def _thread_days_mark(*, days) -> None:
    from threads.services.usage_rollup import usage_rollup_mark_dirty

    usage_rollup_mark_dirty(days=[None if value is None else value.astimezone(UTC).date() for value in days])


@receiver(pre_save, sender="threads.Thread", dispatch_uid="usage_rollup_thread_pre_save")
def _thread_pre_save(sender, instance, raw=False, **kwargs) -> None:
    # Remember the stored creation time: a changed created_at moves the thread to
    # another day, and both days are marked after the save.
    instance._usage_rollup_old_created_at = None
    if not instance._state.adding and not raw:
        stored = sender.objects.filter(pk=instance.pk).values_list("created_at", flat=True)
        instance._usage_rollup_old_created_at = stored.first()


@receiver(post_save, sender="threads.Thread", dispatch_uid="usage_rollup_thread_post_save")
def _thread_post_save(sender, instance, **kwargs) -> None:
    old = getattr(instance, "_usage_rollup_old_created_at", None)
    _thread_days_mark(days=[instance.created_at, old])


@receiver(post_delete, sender="threads.Thread", dispatch_uid="usage_rollup_thread_post_delete")
def _thread_post_delete(sender, instance, **kwargs) -> None:
    _thread_days_mark(days=[instance.created_at])
