"""Read-only admin pages for snapshots and sync runs.

The sync services are the only writers of these rows, so the admin offers no add,
change or delete: an edit here would be overwritten by the next sync anyway.
"""

from django.contrib import admin

from threads.models import Session, SyncRun, Thread


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "title",
        "status",
        "agent_name",
        "created_at",
        "thread_count",
        "archived_at",
        "gone_at",
    ]
    list_filter = [
        "status",
        "model",
        ("archived_at", admin.EmptyFieldListFilter),
        ("gone_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["id", "title", "agent_id", "agent_name", "environment_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Thread)
class ThreadAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "session_id",
        "agent_type",
        "agent_name",
        "model",
        "status",
        "is_primary",
        "created_at",
        "archived_at",
    ]
    list_filter = [
        "status",
        "is_primary",
        "agent_type",
        "model",
        ("archived_at", admin.EmptyFieldListFilter),
        ("gone_at", admin.EmptyFieldListFilter),
    ]
    search_fields = ["id", "session__id", "agent_id", "agent_name"]
    list_select_related = ["session"]
    raw_id_fields = ["session", "parent"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "status",
        "target_id",
        "started_at",
        "finished_at",
        "seen",
        "created",
        "updated",
        "failed",
        "api_calls",
    ]
    list_filter = ["kind", "status"]
    search_fields = ["target_id"]
    date_hierarchy = "started_at"
