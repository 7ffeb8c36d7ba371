"""Pages that browse sessions and threads.

Every page reads snapshots only; the events fragment is the one view that calls the
API, because it loads lazily and on its own. A list view serves the whole page, or
only its results when htmx asks for them (filter changes, sorting, paging).
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from threads import selectors
from threads.filters import ARCHIVED_CHOICES, KIND_CHOICES, thread_filter_from_query, thread_filter_problems
from threads.models import AgentType, Session, SnapshotStatus, Thread
from threads.pagination import PaginationError, Sort, cursor_decode, sort_parse
from threads.presentation import agent_snapshot_from_raw, session_resources_from_raw, timing_shares
from threads.services.thread_events import ThreadEventsUnavailable, thread_events_recent
from threads.services.thread_refresh import RefreshNotQueued, thread_refresh_request

PAGE_SIZE = 50
# Lists show "more than 1,000" rather than count a large table on every page.
COUNT_CAP = 1000
# Users who may archive see counts up to 10,000 on the "archive all matching" button.
# It need not be exact: the confirm page counts the selection before any job starts.
ARCHIVE_COUNT_CAP = 10_000
# A refresh not done after this long is reported as late and polling stops.
REFRESH_POLL_SECONDS = 60


def _wants_fragment(request) -> bool:
    # A history restore after a cache miss needs the whole page, not the fragment.
    return bool(request.htmx) and not request.htmx.history_restore_request


def _render_page_or_fragment(request, *, page: str, fragment: str, context: dict) -> HttpResponse:
    template = fragment if _wants_fragment(request) else page
    response = render(request, template, context)
    # The same URL returns two bodies; caches must keep them apart.
    patch_vary_headers(response, ["HX-Request"])
    return response


def _list_context(request, *, sort_keys: dict) -> dict:
    """Parse filter, sort and cursor from the query string; bad input becomes messages."""
    thread_filter, form = thread_filter_from_query(request.GET)
    problems = thread_filter_problems(thread_filter=thread_filter, form=form)

    try:
        sort = sort_parse(value=request.GET.get("sort", ""), keys=sort_keys, default=selectors.DEFAULT_SORT)
    except PaginationError as exc:
        problems.append(str(exc))
        sort = sort_parse(value="", keys=sort_keys, default=selectors.DEFAULT_SORT)

    cursor = None
    token = request.GET.get("cursor", "")
    if token:
        try:
            cursor = cursor_decode(token=token, sort=sort)
        except PaginationError as exc:
            problems.append(str(exc))

    return {
        "thread_filter": thread_filter,
        "form": form,
        "sort_headers": _sort_headers(request, sort=sort, sort_keys=sort_keys),
        "problems": problems,
        "sort": sort,
        "cursor": cursor,
        "sort_keys": sort_keys,
        "status_choices": SnapshotStatus.choices,
        "archived_choices": ARCHIVED_CHOICES,
        "kind_choices": KIND_CHOICES,
        "agent_type_choices": AgentType.choices,
        "selected_statuses": set(thread_filter.statuses),
    }


def _sort_headers(request, *, sort: Sort, sort_keys: dict) -> dict:
    """Return, per sort name, the query string that sorts by it and its current state.

    Clicking the current column flips its direction; another column starts descending,
    except text columns, which start in A-Z order. The cursor is dropped.
    """
    headers = {}
    for name, key in sort_keys.items():
        active = sort.key.name == name
        if active:
            descending = not sort.descending
        else:
            descending = key.kind != "text"
        query = request.GET.copy()
        query.pop("cursor", None)
        query["sort"] = ("-" if descending else "") + name
        headers[name] = {
            "label": key.label,
            "query": query.urlencode(),
            "active": active,
            "descending": sort.descending if active else None,
        }
    return headers


def _choices_with_current(choices: list[tuple[str, str]], current: str) -> list[tuple[str, str]]:
    # A value from a shared URL stays selectable even when no snapshot has it now.
    if current and current not in {value for value, _label in choices}:
        return [*choices, (current, current)]
    return choices


@require_GET
def session_list(request):
    context = _list_context(request, sort_keys=selectors.SESSION_SORT_KEYS)
    thread_filter = context["thread_filter"]

    page = selectors.session_list_page(
        thread_filter=thread_filter, sort=context["sort"], cursor=context["cursor"], page_size=PAGE_SIZE
    )
    matching = selectors.queryset_count_capped(
        queryset=selectors.session_list_filtered(thread_filter=thread_filter), cap=COUNT_CAP
    )
    if not _wants_fragment(request):
        context["agent_choices"] = _choices_with_current(
            selectors.agent_choices(model=Session), thread_filter.agent
        )
        context["model_choices"] = _choices_with_current(
            [(model, model) for model in selectors.model_choices(model=Session)], thread_filter.model
        )

    context.update(page=page, matching=matching, count_cap=COUNT_CAP)
    return _render_page_or_fragment(
        request, page="threads/session_list.html", fragment="threads/_session_results.html", context=context
    )


@require_GET
def thread_list(request):
    context = _list_context(request, sort_keys=selectors.THREAD_SORT_KEYS)
    thread_filter = context["thread_filter"]

    page = selectors.thread_list_page(
        thread_filter=thread_filter, sort=context["sort"], cursor=context["cursor"], page_size=PAGE_SIZE
    )
    filtered = selectors.thread_list_filtered(thread_filter=thread_filter)
    count_cap = ARCHIVE_COUNT_CAP if request.user.has_perm("threads.archive_thread") else COUNT_CAP
    matching = selectors.queryset_count_capped(queryset=filtered, cap=count_cap)
    if not _wants_fragment(request):
        context["agent_choices"] = _choices_with_current(
            selectors.agent_choices(model=Thread), thread_filter.agent
        )
        context["model_choices"] = _choices_with_current(
            [(model, model) for model in selectors.model_choices(model=Thread)], thread_filter.model
        )

    context.update(
        page=page,
        matching=matching,
        count_cap=count_cap,
        filter_querystring=thread_filter.as_querystring(),
    )
    return _render_page_or_fragment(
        request, page="threads/thread_list.html", fragment="threads/_thread_results.html", context=context
    )


@require_GET
def session_detail(request, session_id: str):
    try:
        session = selectors.session_get(session_id=session_id)
    except Session.DoesNotExist:
        raise Http404("No session with id %r is stored." % session_id) from None

    tree = selectors.session_thread_tree(session=session)
    raw = session.raw if isinstance(session.raw, dict) else {}

    return render(
        request,
        "threads/session_detail.html",
        {
            "session": session,
            "tree": tree,
            "agent": agent_snapshot_from_raw(raw.get("agent")),
            "roster": _roster_from_raw(raw.get("agent")),
            "resources": session_resources_from_raw(raw.get("resources")),
            "metadata": sorted((session.metadata or {}).items())
            if isinstance(session.metadata, dict)
            else [],
            "budget": _budget_amount(raw.get("budget")),
        },
    )


def _roster_from_raw(raw_agent) -> dict | None:
    multiagent = raw_agent.get("multiagent") if isinstance(raw_agent, dict) else None
    if not isinstance(multiagent, dict):
        return None
    members = multiagent.get("agents")
    return {
        "type": multiagent.get("type"),
        "agents": [agent_snapshot_from_raw(member) for member in members]
        if isinstance(members, list)
        else [],
    }


def _budget_amount(raw_budget) -> dict | None:
    if not isinstance(raw_budget, dict) or not isinstance(raw_budget.get("max_list_cost"), dict):
        return None
    money = raw_budget["max_list_cost"]
    try:
        return {"amount": int(money.get("amount")), "currency": money.get("currency") or "USD"}
    except (TypeError, ValueError):
        return None


def _thread_or_404(*, session_id: str, thread_id: str) -> Thread:
    try:
        return selectors.thread_get(session_id=session_id, thread_id=thread_id)
    except Thread.DoesNotExist:
        raise Http404("No thread with id %r is stored for this session." % thread_id) from None


def _refresh_since(request) -> datetime | None:
    value = request.GET.get("refreshing", "")
    try:
        since = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since


@require_GET
def thread_detail(request, session_id: str, thread_id: str):
    """Show a thread, or with `?refreshing=<ISO time>` under htmx only its snapshot age.

    The snapshot-age fragment answers HTTP 286, which stops htmx polling, once the
    snapshot is newer than the refresh request or the refresh is overdue.
    """
    thread = _thread_or_404(session_id=session_id, thread_id=thread_id)
    refresh_since = _refresh_since(request)

    if refresh_since is not None and _wants_fragment(request):
        return _snapshot_age_response(request, thread=thread, refresh_since=refresh_since)

    context = _thread_detail_context(
        thread=thread, refresh=_refresh_state(thread=thread, refresh_since=refresh_since)
    )
    return render(request, "threads/thread_detail.html", context)


def _thread_detail_context(*, thread: Thread, refresh: dict) -> dict:
    raw = thread.raw if isinstance(thread.raw, dict) else {}
    return {
        "thread": thread,
        "session": thread.session,
        "children": selectors.thread_children(thread=thread),
        "agent": agent_snapshot_from_raw(raw.get("agent")),
        "usage_known": isinstance(raw.get("usage"), dict),
        "timing": timing_shares(
            duration=thread.duration_seconds, startup=thread.startup_seconds, active=thread.active_seconds
        ),
        "refresh": refresh,
    }


def _refresh_state(*, thread: Thread, refresh_since: datetime | None) -> dict:
    """Return where a refresh requested at `refresh_since` stands.

    It is done when the snapshot is newer than the request, or when a one-thread sync
    run started after the request has finished (an unchanged record keeps its old
    `fetched_at`). It is late once REFRESH_POLL_SECONDS pass without either.
    """
    state = {"pending": False, "done": False, "late": False, "changed": False, "since": refresh_since}
    if refresh_since is None:
        return state

    changed = thread.fetched_at > refresh_since
    run = None if changed else selectors.thread_refresh_run_finished(thread_id=thread.id, since=refresh_since)
    if changed or run is not None:
        state.update(done=True, changed=changed, run=run)
    elif timezone.now() - refresh_since > timedelta(seconds=REFRESH_POLL_SECONDS):
        state["late"] = True
    else:
        state["pending"] = True
    return state


def _snapshot_age_response(request, *, thread: Thread, refresh_since: datetime) -> HttpResponse:
    refresh = _refresh_state(thread=thread, refresh_since=refresh_since)
    response = render(request, "threads/_thread_snapshot_age.html", {"thread": thread, "refresh": refresh})
    if refresh["pending"]:
        return response

    stop = HttpResponseStopPolling(response.content)
    if refresh["changed"]:
        # The rest of the page shows the old snapshot: reload it whole.
        stop["HX-Refresh"] = "true"
    return stop


@require_POST
def thread_refresh(request, session_id: str, thread_id: str):
    """Queue a refresh of the thread's snapshot, then poll for the new snapshot."""
    thread = _thread_or_404(session_id=session_id, thread_id=thread_id)
    requested_at = timezone.now()

    try:
        thread_refresh_request(session_id=thread.session_id, thread_id=thread.id)
    except RefreshNotQueued as exc:
        refresh = {"pending": False, "done": False, "late": False, "changed": False, "error": str(exc)}
        if _wants_fragment(request):
            return render(
                request, "threads/_thread_snapshot_age.html", {"thread": thread, "refresh": refresh}
            )
        context = _thread_detail_context(thread=thread, refresh=refresh)
        return render(request, "threads/thread_detail.html", context, status=503)

    if _wants_fragment(request):
        refresh = {"pending": True, "done": False, "late": False, "changed": False, "since": requested_at}
        return render(request, "threads/_thread_snapshot_age.html", {"thread": thread, "refresh": refresh})
    url = reverse("threads:thread-detail", args=[thread.session_id, thread.id])
    return redirect("%s?%s" % (url, urlencode({"refreshing": requested_at.isoformat()})))


@require_GET
def thread_events(request, session_id: str, thread_id: str):
    """List the thread's recent events, fetched from the API on request."""
    thread = _thread_or_404(session_id=session_id, thread_id=thread_id)

    error = None
    events = []
    try:
        events = thread_events_recent(session_id=thread.session_id, thread_id=thread.id)
    except ThreadEventsUnavailable as exc:
        error = str(exc)

    return _render_page_or_fragment(
        request,
        page="threads/thread_events.html",
        fragment="threads/_thread_events.html",
        context={"thread": thread, "session": thread.session, "events": events, "error": error},
    )


urlpatterns = [
    path("", session_list, name="session-list"),
    path("threads/", thread_list, name="thread-list"),
    path("sessions/<str:session_id>/", session_detail, name="session-detail"),
    path("sessions/<str:session_id>/threads/<str:thread_id>/", thread_detail, name="thread-detail"),
    path("sessions/<str:session_id>/threads/<str:thread_id>/refresh/", thread_refresh, name="thread-refresh"),
    path("sessions/<str:session_id>/threads/<str:thread_id>/events/", thread_events, name="thread-events"),
]
