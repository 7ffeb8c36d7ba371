"""Serializers of the REST API: query and body validation, and response shapes.

Filters are validated by the pages' own form (`threads.filters`); the filter
serializers here are built from that form's fields, so the OpenAPI schema and the
archive job body list exactly the fields the pages accept. Money is in minor units
(`list_cost_amount`, cents for USD) next to its currency; a null figure is unknown,
never zero.
"""

import dataclasses

from django import forms
from rest_framework import serializers

from threads.filters import SnapshotFilterForm, ThreadFilterForm
from threads.models import ArchiveItem, ArchiveJob, Session, Thread
from threads.pagination import SortKey
from threads.selectors import SESSION_SORT_KEYS, THREAD_SORT_KEYS
from threads.selectors_usage import BREAKDOWN_SORTS, BREAKDOWNS, DEFAULT_PERIOD, PERIOD_DAYS, TOKEN_FIELDS
from threads.services.archive_jobs import MAX_SELECTED_IDS

from .pagination import KeysetQuerySerializer, keyset_page_serializer, sort_choices

MAX_BREAKDOWN_ROWS = 1000

# ---------------------------------------------------------------------------
# Filters, built from the pages' forms
# ---------------------------------------------------------------------------


def _filter_field(form_field: forms.Field) -> serializers.Field:
    """Return the DRF field that documents and checks the same values as `form_field`."""
    help_text = str(form_field.label or "")
    if isinstance(form_field, forms.MultipleChoiceField):
        return serializers.ListField(
            child=serializers.ChoiceField(choices=form_field.choices), required=False, help_text=help_text
        )
    if isinstance(form_field, forms.ChoiceField):
        return serializers.ChoiceField(choices=form_field.choices, required=False, help_text=help_text)
    if isinstance(form_field, forms.DateField):
        return serializers.DateField(required=False, help_text=help_text + " (YYYY-MM-DD, UTC, inclusive)")
    if isinstance(form_field, forms.CharField):
        return serializers.CharField(
            required=False, allow_blank=True, max_length=form_field.max_length, help_text=help_text
        )
    raise TypeError("No API field for filter field %r." % type(form_field).__name__)


def _filter_serializer(name: str, form_class: type[forms.Form], docstring: str):
    fields = {field_name: _filter_field(field) for field_name, field in form_class.base_fields.items()}
    return type(name, (StrictSerializer,), {**fields, "__doc__": docstring})


class StrictSerializer(serializers.Serializer):
    """A serializer that rejects unknown keys, so a misspelt filter cannot widen a selection."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: ["Unknown field. Use one of: %s." % ", ".join(sorted(self.fields))]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)


SessionFilterSerializer = _filter_serializer(
    "SessionFilterSerializer", SnapshotFilterForm, "The sessions list's filter, as the pages take it."
)
ThreadFilterSerializer = _filter_serializer(
    "ThreadFilterSerializer", ThreadFilterForm, "The threads list's filter, as the pages take it."
)


def _keyset_query_serializer(name: str, keys: dict[str, SortKey], default: str):
    sort = serializers.ChoiceField(
        choices=sort_choices(keys),
        required=False,
        help_text="Column to sort by, ascending; prefix with - for descending. Default %s." % default,
    )
    return type(name, (KeysetQuerySerializer,), {"sort": sort})


SessionListQuerySerializer = _keyset_query_serializer(
    "SessionListQuerySerializer", SESSION_SORT_KEYS, "-created"
)
ThreadListQuerySerializer = _keyset_query_serializer(
    "ThreadListQuerySerializer", THREAD_SORT_KEYS, "-created"
)


class UsageQuerySerializer(serializers.Serializer):
    """The usage page's own query parameters; the thread filter comes with them."""

    period = serializers.ChoiceField(
        choices=list(PERIOD_DAYS),
        required=False,
        help_text="Days back from today, inclusive; ignored when created_from or created_to is given. "
        "Default %s." % DEFAULT_PERIOD,
    )
    breakdown = serializers.ChoiceField(choices=BREAKDOWNS, required=False, default="agent")
    sort = serializers.ChoiceField(choices=BREAKDOWN_SORTS, required=False, default="cost")


class UsageBreakdownQuerySerializer(UsageQuerySerializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MAX_BREAKDOWN_ROWS, default=50)
    offset = serializers.IntegerField(required=False, min_value=0, default=0)


# ---------------------------------------------------------------------------
# Sessions and threads
# ---------------------------------------------------------------------------

USAGE_FIELDS = [
    *TOKEN_FIELDS,
    "total_tokens",
    "web_fetch_requests",
    "web_search_requests",
    "list_cost_amount",
    "list_cost_currency",
    "active_seconds",
    "duration_seconds",
]
SNAPSHOT_FIELDS = [
    "id",
    "status",
    "created_at",
    "updated_at",
    "archived_at",
    "agent_id",
    "agent_name",
    "agent_version",
    "model",
    *USAGE_FIELDS,
    "fetched_at",
    "gone_at",
    "parse_error",
]


class SessionSerializer(serializers.ModelSerializer):
    """A session snapshot as last synced."""

    total_tokens = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = Session
        fields = [
            *SNAPSHOT_FIELDS[:2],
            "title",
            *SNAPSHOT_FIELDS[2:],
            "environment_id",
            "deployment_id",
            "metadata",
            "thread_count",
            "threads_synced_at",
        ]
        read_only_fields = fields


class ThreadSerializer(serializers.ModelSerializer):
    """A thread snapshot as last synced: the primary thread or a child."""

    session_id = serializers.CharField(read_only=True)
    parent_id = serializers.CharField(read_only=True, allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True, read_only=True)

    class Meta:
        model = Thread
        fields = [
            *SNAPSHOT_FIELDS[:2],
            "session_id",
            "parent_id",
            "is_primary",
            "agent_type",
            "workflow_run_id",
            *SNAPSHOT_FIELDS[2:],
            "startup_seconds",
        ]
        read_only_fields = fields


class ThreadTreeRowSerializer(serializers.Serializer):
    depth = serializers.IntegerField(help_text="0 for the primary thread and other roots.")
    thread = ThreadSerializer()


class ThreadTreeSerializer(serializers.Serializer):
    """A session's threads depth first, with sums over the threads whose figures are known."""

    rows = ThreadTreeRowSerializer(many=True)
    total_tokens = serializers.IntegerField(allow_null=True)
    list_cost_amount = serializers.IntegerField(allow_null=True)
    list_cost_known = serializers.IntegerField(help_text="Threads whose list cost is known.")
    active_seconds = serializers.FloatField(allow_null=True)


class SessionDetailSerializer(serializers.Serializer):
    session = SessionSerializer()
    raw = serializers.JSONField(help_text="The session exactly as the API sent it.")
    thread_tree = ThreadTreeSerializer()


class UsageSumsSerializer(serializers.Serializer):
    """Usage summed over a set of threads. The unknown counts give how many threads had no figure."""

    thread_count = serializers.IntegerField()
    usage_unknown_count = serializers.IntegerField()
    cost_unknown_count = serializers.IntegerField()
    input_tokens = serializers.IntegerField(allow_null=True)
    output_tokens = serializers.IntegerField(allow_null=True)
    cache_read_input_tokens = serializers.IntegerField(allow_null=True)
    cache_creation_5m_input_tokens = serializers.IntegerField(allow_null=True)
    cache_creation_1h_input_tokens = serializers.IntegerField(allow_null=True)
    total_tokens = serializers.IntegerField(allow_null=True)
    list_cost_amount = serializers.IntegerField(allow_null=True, help_text="Cents of USD.")
    active_seconds = serializers.FloatField(allow_null=True)


class ThreadTreeUsageSerializer(UsageSumsSerializer):
    """Usage summed over a thread and all its descendants."""


class ThreadDetailSerializer(serializers.Serializer):
    thread = ThreadSerializer()
    raw = serializers.JSONField(help_text="The thread exactly as the API sent it.")
    tree_usage = ThreadTreeUsageSerializer()


SessionPageSerializer = keyset_page_serializer("SessionPageSerializer", SessionSerializer)
ThreadPageSerializer = keyset_page_serializer("ThreadPageSerializer", ThreadSerializer)

# ---------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------


class UsageTotalsSerializer(UsageSumsSerializer):
    session_count = serializers.IntegerField()


class UsageSessionTotalsSerializer(serializers.Serializer):
    """The sessions' own figures (authoritative cost) next to the sums over all their threads."""

    session_count = serializers.IntegerField()
    session_usage_unknown_count = serializers.IntegerField()
    session_cost_unknown_count = serializers.IntegerField()
    session_list_cost_amount = serializers.IntegerField(allow_null=True)
    session_active_seconds = serializers.FloatField(allow_null=True)
    session_total_tokens = serializers.IntegerField(allow_null=True)
    threads_thread_count = serializers.IntegerField()
    threads_cost_unknown_count = serializers.IntegerField()
    threads_list_cost_amount = serializers.IntegerField(allow_null=True)
    threads_total_tokens = serializers.IntegerField(allow_null=True)


class UsageDaySerializer(UsageSumsSerializer):
    day = serializers.DateField(help_text="UTC day the threads were created on.")


class UsageBreakdownRowSerializer(UsageSumsSerializer):
    """One agent, model or session with the usage of its selected threads.

    `key` is the value to filter the threads list by (`agent`, `model` or `session`).
    Advisor threads have no agent id or name: their row has an empty key and
    `agent_type` advisor, and the filter `agent_type=advisor` selects them.
    Session rows add the session's own figures and the sums over all its threads.
    """

    key = serializers.CharField()
    agent_type = serializers.CharField(required=False, allow_null=True)
    agent_name = serializers.CharField(required=False, allow_null=True)
    session = SessionSerializer(required=False, allow_null=True)
    all_threads = UsageSumsSerializer(required=False, allow_null=True)


class UsageBreakdownSerializer(serializers.Serializer):
    breakdown = serializers.ChoiceField(choices=BREAKDOWNS)
    count = serializers.IntegerField(help_text="Rows in the whole breakdown.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = UsageBreakdownRowSerializer(many=True)


class UsageTopSessionSerializer(serializers.Serializer):
    session = SessionSerializer(allow_null=True)
    all_threads = UsageSumsSerializer(allow_null=True)


class UsageSerializer(serializers.Serializer):
    """Every figure of the usage page for one filter and period."""

    period = serializers.CharField(help_text="7d, 30d, 90d, all, or custom when dates were given.")
    created_from = serializers.DateField(allow_null=True)
    created_to = serializers.DateField(allow_null=True)
    totals = UsageTotalsSerializer()
    session_totals = UsageSessionTotalsSerializer()
    daily = UsageDaySerializer(many=True)
    breakdown = serializers.ChoiceField(choices=BREAKDOWNS)
    breakdown_rows = UsageBreakdownRowSerializer(
        many=True, help_text="The first rows; page with /usage/breakdown/."
    )
    breakdown_count = serializers.IntegerField()
    top_threads_by_tokens = ThreadSerializer(many=True)
    top_threads_by_cost = ThreadSerializer(many=True)
    top_sessions_by_tokens = UsageTopSessionSerializer(many=True)
    top_sessions_by_cost = UsageTopSessionSerializer(many=True)


# ---------------------------------------------------------------------------
# Archive jobs
# ---------------------------------------------------------------------------


class ArchiveJobCreateSerializer(serializers.Serializer):
    """Threads to archive: `thread_ids`, or every thread that `filter` selects, not both."""

    thread_ids = serializers.ListField(
        child=serializers.CharField(max_length=128),
        required=False,
        min_length=1,
        max_length=MAX_SELECTED_IDS,
        help_text="Thread ids (sthr_...), at most %d." % MAX_SELECTED_IDS,
    )
    filter = ThreadFilterSerializer(
        required=False,
        help_text="The threads list's filter; {} selects every thread that is not archived.",
    )
    interrupt_running = serializers.BooleanField(
        default=False, help_text="Interrupt running threads first instead of skipping them."
    )
    dry_run = serializers.BooleanField(
        default=False, help_text="Return what the job would do, and create nothing."
    )

    def validate(self, attrs):
        has_ids, has_filter = "thread_ids" in attrs, "filter" in attrs
        if has_ids and has_filter:
            raise serializers.ValidationError({"filter": ["Give thread_ids or filter, not both."]})
        if not has_ids and not has_filter:
            raise serializers.ValidationError(
                {"thread_ids": ["Give thread_ids (a list of thread ids) or filter (an object)."]}
            )
        return attrs


class ArchivePlanCountSerializer(serializers.Serializer):
    reason = serializers.CharField(help_text="Stable code, e.g. archive, running, primary.")
    label = serializers.CharField()
    count = serializers.IntegerField()


class ArchiveAgentCountSerializer(serializers.Serializer):
    agent = serializers.CharField()
    planned = serializers.IntegerField()
    skipped = serializers.IntegerField()


class ArchiveSampleSerializer(serializers.Serializer):
    id = serializers.CharField()
    session_id = serializers.CharField()
    status = serializers.CharField()
    agent_type = serializers.CharField()
    agent_name = serializers.CharField(allow_null=True)
    model = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField(allow_null=True)
    list_cost_amount = serializers.IntegerField(allow_null=True)
    list_cost_currency = serializers.CharField(allow_null=True)
    plan = serializers.CharField()
    plan_label = serializers.CharField()


class ArchiveDryRunSerializer(serializers.Serializer):
    """What creating the job would archive and skip, computed from the snapshots."""

    dry_run = serializers.BooleanField(default=True)
    selected_count = serializers.IntegerField()
    planned_count = serializers.IntegerField(help_text="Threads the job would try to archive.")
    skipped_count = serializers.IntegerField()
    planned = ArchivePlanCountSerializer(many=True)
    skipped = ArchivePlanCountSerializer(many=True, help_text="Skipped threads by reason.")
    unknown_ids = serializers.ListField(
        child=serializers.CharField(), help_text="Given ids with no stored snapshot; they are left out."
    )
    list_cost_totals = serializers.DictField(
        child=serializers.IntegerField(), help_text="Minor units per currency over the planned threads."
    )
    total_tokens = serializers.IntegerField()
    by_agent = ArchiveAgentCountSerializer(many=True)
    samples = ArchiveSampleSerializer(many=True, help_text="Up to 20 selected threads, newest first.")

    def to_representation(self, instance):
        def counts(rows):
            return [{"reason": reason, "label": label, "count": count} for reason, label, count in rows]

        data = {
            **dataclasses.asdict(instance),
            "dry_run": True,
            "skipped_count": instance.skipped_count,
            "planned": counts(instance.planned),
            "skipped": counts(instance.skipped),
        }
        return super().to_representation(data)


class ArchiveProgressSerializer(serializers.Serializer):
    """Live counts of a job's items by state."""

    total = serializers.IntegerField()
    pending = serializers.IntegerField()
    in_progress = serializers.IntegerField()
    archived = serializers.IntegerField()
    skipped = serializers.IntegerField()
    failed = serializers.IntegerField()
    already_archived = serializers.IntegerField()
    done = serializers.IntegerField()
    percent = serializers.IntegerField()


class ArchiveJobSerializer(serializers.ModelSerializer):
    """An archive job; the count columns are written when it finishes."""

    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    cancelled_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    filter = serializers.JSONField(source="filter_query", read_only=True)

    class Meta:
        model = ArchiveJob
        fields = [
            "id",
            "status",
            "scope",
            "filter",
            "interrupt_running",
            "created_at",
            "created_by",
            "grace_until",
            "started_at",
            "finished_at",
            "cancelled_at",
            "cancelled_by",
            "total_count",
            "planned_count",
            "list_cost_totals",
            "total_tokens",
            "archived_count",
            "skipped_count",
            "failed_count",
        ]
        read_only_fields = fields


class SkippedReasonSerializer(serializers.Serializer):
    reason = serializers.CharField()
    count = serializers.IntegerField()


class ArchiveJobDetailSerializer(serializers.Serializer):
    job = ArchiveJobSerializer()
    selected_ids = serializers.ListField(child=serializers.CharField())
    progress = ArchiveProgressSerializer()
    skipped_reasons = SkippedReasonSerializer(many=True)


class ArchiveJobRetrySerializer(serializers.Serializer):
    retried = serializers.IntegerField(help_text="Failed items returned to pending.")
    job = ArchiveJobSerializer()


class ArchiveItemSerializer(serializers.ModelSerializer):
    """One thread of an archive job and what happened to it."""

    class Meta:
        model = ArchiveItem
        fields = [
            "id",
            "thread_id",
            "session_id",
            "agent_label",
            "state",
            "attempts",
            "reason",
            "already_archived",
            "last_error_type",
            "last_error_message",
            "last_request_id",
            "finished_at",
        ]
        read_only_fields = fields
