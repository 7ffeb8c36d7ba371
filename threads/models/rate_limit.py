"""State of the shared API rate limiter when no Redis is configured."""

from django.db import models


class RateLimitBucket(models.Model):
    """Token bucket shared by every process through the database.

    Times are Unix seconds (wall clock) because several processes read them.
    """

    name = models.CharField(primary_key=True, max_length=64)
    tokens = models.FloatField()
    refilled_at = models.FloatField()
    # No call may start before this time: a 429's retry-after pauses everyone.
    paused_until = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return self.name
