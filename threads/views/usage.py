"""The token usage page and its CSV exports.

The page and every CSV read the same query parameters: the shared thread filter,
`period`, `breakdown`, `sort` and `chart` (see `usage_params_from_query`), plus
`format=csv` with `breakdown=agent|model|session|daily|top_threads|top_sessions`
for an export. Charts are inline SVG drawn here from the selectors' rows, each with
a table under it, so the page needs no JavaScript.

In the CSV files an unknown figure is an empty cell, never 0. Costs come as dollars
with two decimals and as minor units. The `*active_seconds` columns have exactly
three decimals (milliseconds).
"""

import csv
from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET

from threads.filters import ARCHIVED_CHOICES, KIND_CHOICES
from threads.models import AgentType, SnapshotStatus
from threads.selectors_usage import (
    BREAKDOWN_PAGE_ROWS,
    DEFAULT_PERIOD,
    TOKEN_FIELDS,
    UsageParams,
    usage_breakdown_rows,
    usage_daily,
    usage_overview,
    usage_params_from_query,
    usage_session_figures_iter,
    usage_top_sessions,
    usage_top_threads,
)

# The thread list's `sort` values (threads.selectors.THREAD_SORT_KEYS) for the most
# expensive and the most tokens first.
THREAD_LIST_SORTS = {"tokens": "-tokens"}
THREAD_LIST_DEFAULT_SORT = "-cost"
CSV_BREAKDOWNS = ("agent", "model", "session", "daily", "top_threads", "top_sessions")
CSV_TOP_ROWS = 1000
PERIOD_LINKS = [("7d", "Last 7 days"), ("30d", "Last 30 days"), ("90d", "Last 90 days"), ("all", "All time")]
BREAKDOWN_LINKS = [("agent", "Agent"), ("model", "Model"), ("session", "Session")]
SORT_LINKS = [("cost", "Cost"), ("tokens", "Tokens"), ("threads", "Threads"), ("name", "Name")]
TOKEN_SERIES = [
    ("input_tokens", "Input", "usage-input"),
    ("output_tokens", "Output", "usage-output"),
    ("cache_read_input_tokens", "Cache read", "usage-cache-read"),
    ("cache_creation_5m_input_tokens", "Cache creation (5m)", "usage-cache-5m"),
    ("cache_creation_1h_input_tokens", "Cache creation (1h)", "usage-cache-1h"),
]


@require_GET
def usage_page(request: HttpRequest) -> HttpResponse:
    """Render the usage page, or one breakdown as CSV when `format=csv`."""
    params = usage_params_from_query(request.GET, today=timezone.now().date())

    if request.GET.get("format") == "csv":
        return usage_csv(params=params, breakdown=request.GET.get("breakdown", ""))

    overview = usage_overview(params=params)
    context = usage_page_context(params=params, overview=overview)
    return render(request, "threads/usage.html", context)


urlpatterns = [
    path("usage/", usage_page, name="usage"),
]


# ---------------------------------------------------------------------------
# Page context: links, display values and charts
# ---------------------------------------------------------------------------


def money_display(amount: int | None) -> str | None:
    """Format minor units of USD as "$1,234.56" ("-$0.05" when negative), or None when unknown."""
    if amount is None:
        return None
    sign = "-" if amount < 0 else ""
    dollars, cents = divmod(abs(amount), 100)
    return "%s$%s.%02d" % (sign, f"{dollars:,}", cents)


def usage_query(params: UsageParams, **changes) -> str:
    """Return the usage page's querystring for `params`, with `changes` applied (None removes).

    A preset period is kept as `period`, so a bookmark keeps rolling; only a custom
    range is written as dates.
    """
    thread_filter = params.thread_filter
    query = thread_filter.as_query()
    query.pop("archived", None)
    if thread_filter.archived != "all":
        query["archived"] = thread_filter.archived
    if params.period != "custom":
        query.pop("created_from", None)
        query.pop("created_to", None)
        if params.period != DEFAULT_PERIOD:
            query["period"] = params.period
    defaults = {"breakdown": "agent", "sort": "cost", "chart": "tokens"}
    for name, default in defaults.items():
        if getattr(params, name) != default:
            query[name] = getattr(params, name)

    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = value
    return urlencode(query, doseq=True)


def thread_list_query(params: UsageParams, **narrow) -> str:
    """Return the thread list's querystring for the page's threads narrowed by `narrow`.

    The list is sorted like the page: most tokens first when the page sorts by
    tokens, else most expensive first.
    The dates are the period's resolved dates, so the list shows exactly the threads
    a row sums. `archived` is always written because the two pages default differently.
    """
    query = params.thread_filter.as_query()
    query["archived"] = params.thread_filter.archived
    query.update(narrow)
    query["sort"] = THREAD_LIST_SORTS.get(params.sort, THREAD_LIST_DEFAULT_SORT)
    return urlencode(query, doseq=True)


def _usage_display(row: dict) -> dict:
    """Return a copy of a usage row with the display strings the template needs."""
    return {**row, "list_cost_display": money_display(row.get("list_cost_amount"))}


def _session_row_display(row: dict) -> dict:
    session = row["session"]
    all_threads = row["all_threads"]
    session_cost = session.list_cost_amount if session is not None else None
    threads_cost = all_threads.get("list_cost_amount")
    difference = None
    if session_cost is not None and threads_cost is not None:
        difference = session_cost - threads_cost
    return {
        **_usage_display(row),
        "session_cost_display": money_display(session_cost),
        "all_threads_cost_display": money_display(threads_cost),
        "all_threads_cost_unknown_count": all_threads.get("cost_unknown_count", 0),
        "difference_display": money_display(difference),
    }


def usage_page_context(*, params: UsageParams, overview: dict) -> dict:
    """Build the template context from the selectors' figures."""
    breakdown_rows = [_usage_display(row) for row in overview["breakdown"]["rows"]]
    if params.breakdown == "session":
        breakdown_rows = [_session_row_display(row) for row in overview["breakdown"]["rows"]]
    for row in breakdown_rows:
        row["thread_list_query"] = _breakdown_thread_list_query(params, row)

    daily_rows = [_usage_display(row) for row in overview["daily"]]
    for row in daily_rows:
        day = row["day"].isoformat()
        row["thread_list_query"] = thread_list_query(params, created_from=day, created_to=day)

    totals = _usage_display(overview["totals"])
    session_totals = overview["session_totals"]
    session_cost = session_totals["session_list_cost_amount"]
    threads_cost = session_totals["threads_list_cost_amount"]
    session_totals = {
        **session_totals,
        "session_cost_display": money_display(session_cost),
        "threads_cost_display": money_display(threads_cost),
        "difference_display": money_display(
            None if session_cost is None or threads_cost is None else session_cost - threads_cost
        ),
    }

    trees = overview["thread_trees"]
    return {
        "params": params,
        "thread_filter": params.thread_filter,
        "filter_errors": params.thread_filter.errors,
        "problems": params.problems,
        "totals": totals,
        "session_totals": session_totals,
        "daily_rows": daily_rows,
        "daily_chart": daily_chart(params=params, rows=overview["daily"]),
        "breakdown_rows": breakdown_rows,
        "breakdown_row_count": overview["breakdown"]["row_count"],
        "breakdown_page_rows": BREAKDOWN_PAGE_ROWS,
        "breakdown_chart": breakdown_chart(params=params, rows=breakdown_rows),
        "top_threads_by_tokens": [
            _thread_display(thread, trees) for thread in overview["top_threads_by_tokens"]
        ],
        "top_threads_by_cost": [_thread_display(thread, trees) for thread in overview["top_threads_by_cost"]],
        "top_sessions_by_tokens": [
            _top_session_display(params, row) for row in overview["top_sessions_by_tokens"]
        ],
        "top_sessions_by_cost": [
            _top_session_display(params, row) for row in overview["top_sessions_by_cost"]
        ],
        "period_links": [
            {
                "label": label,
                "query": usage_query(params, period=key, created_from=None, created_to=None),
                "current": params.period == key,
            }
            for key, label in PERIOD_LINKS
        ],
        "breakdown_links": [
            {"label": label, "query": usage_query(params, breakdown=key), "current": params.breakdown == key}
            for key, label in BREAKDOWN_LINKS
        ],
        "sort_links": [
            {"label": label, "query": usage_query(params, sort=key), "current": params.sort == key}
            for key, label in SORT_LINKS
        ],
        "chart_links": [
            {"label": label, "query": usage_query(params, chart=key), "current": params.chart == key}
            for key, label in (("tokens", "Tokens by type"), ("cost", "List cost"))
        ],
        "csv_queries": {name: usage_query(params, format="csv", breakdown=name) for name in CSV_BREAKDOWNS},
        "all_threads_query": thread_list_query(params),
        "token_series": TOKEN_SERIES,
        "status_choices": _status_choices(params),
        "archived_choices": ARCHIVED_CHOICES,
        "kind_choices": KIND_CHOICES,
        "agent_type_choices": AgentType.choices,
    }


def _status_choices(params: UsageParams) -> list[dict]:
    return [
        {"value": value, "label": label, "checked": value in params.thread_filter.statuses}
        for value, label in SnapshotStatus.choices
    ]


def _top_session_display(params: UsageParams, row: dict) -> dict:
    # The session's threads link lists all of them: its figures cover them all.
    query = urlencode({"session": row["key"], "archived": "all", "sort": THREAD_LIST_DEFAULT_SORT})
    return {**_session_row_display(row), "thread_list_query": query}


def _breakdown_thread_list_query(params: UsageParams, row: dict) -> str | None:
    """Return the thread list query for one breakdown row, or None when the row has no key to filter by.

    The advisor row is the exception: the API sends an advisor as only a type and a
    model (`BetaManagedAgentsAdvisor` in the anthropic SDK), so every advisor thread
    falls in that one keyless row, and `agent_type` selects exactly them. Other
    keyless agent rows (an inline agent without a name, an unknown variant) share
    their type with keyed rows and get no link.
    """
    if params.breakdown == "agent" and not row["key"] and row.get("agent_type") == AgentType.ADVISOR:
        return thread_list_query(params, agent_type=AgentType.ADVISOR)
    if not row["key"]:
        return None
    name = {"agent": "agent", "model": "model", "session": "session"}[params.breakdown]
    return thread_list_query(params, **{name: row["key"]})


def _thread_display(thread, trees: dict) -> dict:
    tree = trees.get(thread.id)
    return {
        "thread": thread,
        "total_tokens": thread.total_tokens,
        "list_cost_display": money_display(thread.list_cost_amount),
        "tree": tree,
        "tree_cost_display": money_display(tree.list_cost_amount) if tree else None,
    }


# ---------------------------------------------------------------------------
# SVG charts
# ---------------------------------------------------------------------------

CHART_WIDTH = 760
CHART_HEIGHT = 240
CHART_LEFT = 84
CHART_RIGHT = 8
CHART_TOP = 10
CHART_BOTTOM = 28
CHART_MAX_DAYS = 400
BAR_CHART_ROWS = 10
BAR_ROW_HEIGHT = 22
BAR_LABEL_WIDTH = 220


def _nice_step(maximum: float, ticks: int = 4) -> float:
    """Return a round gridline step (1, 2 or 5 times a power of ten) that covers `maximum`."""
    if maximum <= 0:
        return 1
    raw = maximum / ticks
    power = 10 ** (len(str(int(raw))) - 1) if raw >= 1 else 1
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def _tick_label(value: float, *, chart: str) -> str:
    if chart == "cost":
        return money_display(int(value)) or ""
    return f"{int(value):,}"


def daily_chart(*, params: UsageParams, rows: list[dict]) -> dict | None:
    """Return the geometry of the daily stacked bar chart, or None when there is no data.

    Tokens stack by type; cost shows one bar of known list cost per day. Days with
    no threads inside the period get an empty slot, so gaps are visible.
    """
    by_day = {row["day"]: row for row in rows}
    if not by_day:
        return None

    full_first = params.thread_filter.created_from or min(by_day)
    last = params.thread_filter.created_to or max(by_day)
    first = max(full_first, last - timedelta(days=CHART_MAX_DAYS - 1))
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]

    if params.chart == "cost":
        series = [("list_cost_amount", "List cost", "usage-cost")]
    else:
        series = TOKEN_SERIES

    def stack_total(row: dict) -> int:
        return sum(row.get(name) or 0 for name, _, _ in series)

    maximum = max((stack_total(by_day[day]) for day in days if day in by_day), default=0)
    step = _nice_step(maximum)
    top = step * max(1, -(-maximum // step))
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    slot = plot_width / len(days)

    bars = []
    for index, day in enumerate(days):
        row = by_day.get(day)
        if row is None:
            continue
        bottom = CHART_TOP + plot_height
        segments = []
        for name, _label, css_class in series:
            value = row.get(name) or 0
            height = plot_height * value / top
            bottom -= height
            segments.append({"y": round(bottom, 2), "height": round(height, 2), "css_class": css_class})
        bars.append(
            {
                "x": round(CHART_LEFT + index * slot + slot * 0.1, 2),
                "width": round(max(slot * 0.8, 0.5), 2),
                "segments": segments,
                "title": _daily_bar_title(day, row, series=series, chart=params.chart),
            }
        )

    gridlines = []
    value = 0
    while value <= top:
        y = CHART_TOP + plot_height - plot_height * value / top
        gridlines.append({"y": round(y, 2), "label": _tick_label(value, chart=params.chart)})
        value += step

    label_every = max(1, len(days) // 6)
    day_labels = [
        {"x": round(CHART_LEFT + index * slot + slot / 2, 2), "label": day.isoformat()}
        for index, day in enumerate(days)
        if index % label_every == 0
    ]
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT,
        "axis_y": CHART_TOP + plot_height,
        "label_y": CHART_HEIGHT - 8,
        "bars": bars,
        "gridlines": gridlines,
        "day_labels": day_labels,
        "series": series,
        "truncated_from": first if first > full_first else None,
        "title": "List cost per day" if params.chart == "cost" else "Tokens per day, by type",
    }


def _daily_bar_title(day: date, row: dict, *, series, chart: str) -> str:
    if chart == "cost":
        cost = money_display(row.get("list_cost_amount")) or "unknown"
        unknown = row["cost_unknown_count"]
        unknown_text = (
            ngettext("cost unknown for %d thread", "cost unknown for %d threads", unknown) % unknown
        )
        return "%s: %s, %s" % (day.isoformat(), cost, unknown_text)
    parts = ["%s %s" % (label, f"{row.get(name) or 0:,}") for name, label, _ in series]
    return "%s: %s" % (day.isoformat(), ", ".join(parts))


def breakdown_chart(*, params: UsageParams, rows: list[dict]) -> dict | None:
    """Return the geometry of a horizontal bar chart of the first breakdown rows, or None."""
    metric = {"tokens": "total_tokens", "threads": "thread_count"}.get(params.sort, "list_cost_amount")
    shown = rows[:BAR_CHART_ROWS]
    maximum = max((row.get(metric) or 0 for row in shown), default=0)
    if not shown or maximum <= 0:
        return None

    plot_width = CHART_WIDTH - BAR_LABEL_WIDTH - 110
    bars = []
    for index, row in enumerate(shown):
        value = row.get(metric)
        if metric == "list_cost_amount":
            value_label = money_display(value) or "cost unknown"
        else:
            value_label = "unknown" if value is None else f"{value:,}"
        bars.append(
            {
                "y": index * BAR_ROW_HEIGHT + 4,
                "text_y": index * BAR_ROW_HEIGHT + 16,
                "width": round(plot_width * (value or 0) / maximum, 2),
                "label": _breakdown_label(params.breakdown, row),
                "value_label": value_label,
                "value_x": BAR_LABEL_WIDTH + round(plot_width * (value or 0) / maximum, 2) + 6,
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": len(shown) * BAR_ROW_HEIGHT + 8,
        "label_width": BAR_LABEL_WIDTH,
        "bars": bars,
        "metric_label": {"total_tokens": "total tokens", "thread_count": "threads"}.get(metric, "list cost"),
    }


def _breakdown_label(breakdown: str, row: dict) -> str:
    """Return a short label for a breakdown row; long labels are cut to fit the chart."""
    if breakdown == "agent":
        label = row.get("agent_name") or row["key"] or _agent_type_label(row.get("agent_type"))
    elif breakdown == "session":
        session = row.get("session")
        label = (session.title if session is not None and session.title else "") or row["key"]
    else:
        label = row["key"] or "unknown model"
    return label if len(label) <= 32 else label[:31] + "…"


def _agent_type_label(agent_type: str | None) -> str:
    if agent_type == "advisor":
        return "advisor"
    return "%s (no id or name)" % (agent_type or "unknown agent")


# ---------------------------------------------------------------------------
# CSV exports
# ---------------------------------------------------------------------------

USAGE_COLUMNS = [
    "thread_count",
    "threads_without_usage",
    "threads_cost_unknown",
    *TOKEN_FIELDS,
    "total_tokens",
    "list_cost_usd",
    "list_cost_minor_units",
    "active_seconds",
]
CSV_HEADERS = {
    "agent": ["agent_key", "agent_name", "agent_type", *USAGE_COLUMNS],
    "model": ["model", *USAGE_COLUMNS],
    "daily": ["date", *USAGE_COLUMNS],
    "session": [
        "session_id",
        "session_title",
        *USAGE_COLUMNS,
        "session_total_tokens",
        "session_list_cost_usd",
        "session_list_cost_minor_units",
        "session_active_seconds",
        "all_threads_count",
        "all_threads_list_cost_usd",
        "all_threads_list_cost_minor_units",
    ],
    "top_threads": [
        "rank_by",
        "rank",
        "thread_id",
        "session_id",
        "parent_thread_id",
        "is_primary",
        "agent_id",
        "agent_name",
        "agent_type",
        "model",
        "status",
        "created_at",
        *TOKEN_FIELDS,
        "total_tokens",
        "list_cost_usd",
        "list_cost_minor_units",
        "active_seconds",
    ],
    "top_sessions": [
        "rank_by",
        "rank",
        "session_id",
        "session_title",
        "agent_id",
        "agent_name",
        "model",
        "status",
        "created_at",
        *TOKEN_FIELDS,
        "session_total_tokens",
        "session_list_cost_usd",
        "session_list_cost_minor_units",
        "session_active_seconds",
        "all_threads_count",
        "all_threads_list_cost_usd",
        "all_threads_list_cost_minor_units",
    ],
}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str | None) -> str:
    """Return an API string as a CSV cell that spreadsheets will not run as a formula."""
    if value is None:
        return ""
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_number(value) -> str:
    """Return a number unformatted, or an empty cell when unknown."""
    return "" if value is None else str(value)


def csv_seconds(value: float | None) -> str:
    """Return seconds with exactly three decimals (milliseconds), or an empty cell when unknown.

    Sums of float seconds carry binary noise such as 12.300000000000001, so a fixed
    precision keeps the cells stable and comparable.
    """
    if value is None:
        return ""
    return "%.3f" % value


def csv_major_units(amount: int | None) -> str:
    """Return minor units of USD as dollars with two decimals, or an empty cell when unknown."""
    if amount is None:
        return ""
    return str((Decimal(amount) / 100).quantize(Decimal("0.01")))


def _csv_usage_cells(row: dict) -> list[str]:
    return [
        csv_number(row["thread_count"]),
        csv_number(row["usage_unknown_count"]),
        csv_number(row["cost_unknown_count"]),
        *[csv_number(row[name]) for name in TOKEN_FIELDS],
        csv_number(row["total_tokens"]),
        csv_major_units(row["list_cost_amount"]),
        csv_number(row["list_cost_amount"]),
        csv_seconds(row["active_seconds"]),
    ]


def _csv_session_cells(session, all_threads: dict) -> list[str]:
    if session is None:
        own = ["", "", "", ""]
    else:
        own = [
            csv_number(session.total_tokens),
            csv_major_units(session.list_cost_amount),
            csv_number(session.list_cost_amount),
            csv_seconds(session.active_seconds),
        ]
    return [
        *own,
        csv_number(all_threads.get("thread_count", 0)),
        csv_major_units(all_threads.get("list_cost_amount")),
        csv_number(all_threads.get("list_cost_amount")),
    ]


def csv_rows(*, params: UsageParams, breakdown: str):
    """Yield the CSV rows of one breakdown, header first."""
    thread_filter = params.thread_filter
    yield CSV_HEADERS[breakdown]

    if breakdown in ("agent", "model"):
        rows = usage_breakdown_rows(thread_filter=thread_filter, breakdown=breakdown, sort=params.sort)
        for row in rows.iterator(chunk_size=2000):
            if breakdown == "agent":
                key_cells = [csv_text(row["key"]), csv_text(row["agent_name"]), csv_text(row["agent_type"])]
            else:
                key_cells = [csv_text(row["key"])]
            yield [*key_cells, *_csv_usage_cells(row)]
    elif breakdown == "daily":
        for row in usage_daily(thread_filter=thread_filter):
            yield [row["day"].isoformat(), *_csv_usage_cells(row)]
    elif breakdown == "session":
        rows = usage_breakdown_rows(thread_filter=thread_filter, breakdown="session", sort=params.sort)
        for row in usage_session_figures_iter(rows=rows.iterator(chunk_size=2000)):
            session = row["session"]
            title = session.title if session is not None else None
            yield [
                csv_text(row["key"]),
                csv_text(title),
                *_csv_usage_cells(row),
                *_csv_session_cells(session, row["all_threads"]),
            ]
    elif breakdown == "top_threads":
        for rank_by in ("tokens", "cost"):
            threads = usage_top_threads(thread_filter=thread_filter, by=rank_by, limit=CSV_TOP_ROWS)
            for rank, thread in enumerate(threads, start=1):
                yield _csv_thread_row(thread, rank_by=rank_by, rank=rank)
    elif breakdown == "top_sessions":
        for rank_by in ("tokens", "cost"):
            rows = usage_top_sessions(thread_filter=thread_filter, by=rank_by, limit=CSV_TOP_ROWS)
            for rank, row in enumerate(rows, start=1):
                yield _csv_top_session_row(row, rank_by=rank_by, rank=rank)


def _csv_thread_row(thread, *, rank_by: str, rank: int) -> list[str]:
    return [
        rank_by,
        str(rank),
        csv_text(thread.id),
        csv_text(thread.session_id),
        csv_text(thread.parent_id),
        "true" if thread.is_primary else "false",
        csv_text(thread.agent_id),
        csv_text(thread.agent_name),
        csv_text(thread.agent_type),
        csv_text(thread.model),
        csv_text(thread.status),
        thread.created_at.isoformat() if thread.created_at else "",
        *[csv_number(getattr(thread, name)) for name in TOKEN_FIELDS],
        csv_number(thread.total_tokens),
        csv_major_units(thread.list_cost_amount),
        csv_number(thread.list_cost_amount),
        csv_seconds(thread.active_seconds),
    ]


def _csv_top_session_row(row: dict, *, rank_by: str, rank: int) -> list[str]:
    session = row["session"]
    return [
        rank_by,
        str(rank),
        csv_text(session.id),
        csv_text(session.title),
        csv_text(session.agent_id),
        csv_text(session.agent_name),
        csv_text(session.model),
        csv_text(session.status),
        session.created_at.isoformat() if session.created_at else "",
        *[csv_number(getattr(session, name)) for name in TOKEN_FIELDS],
        *_csv_session_cells(session, row["all_threads"]),
    ]


class _Echo:
    """A file-like object whose write returns the value, for csv.writer in a stream."""

    def write(self, value: str) -> str:
        return value


def usage_csv(*, params: UsageParams, breakdown: str) -> HttpResponse:
    """Stream one breakdown as a CSV attachment.

    An unknown breakdown or any invalid filter or period gets a plain-text 400,
    because a file built without the invalid value would cover other threads than
    the ones requested, and a CSV has no place for a warning.
    """
    if breakdown not in CSV_BREAKDOWNS:
        return HttpResponse(
            "Invalid breakdown %r: expected one of %s." % (breakdown, ", ".join(CSV_BREAKDOWNS)),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    if params.problems:
        lines = ["Invalid query parameters, so no CSV was made. Fix these and try again:"]
        lines += ["- %s" % problem for problem in params.problems]
        return HttpResponse("\n".join(lines) + "\n", status=400, content_type="text/plain; charset=utf-8")

    writer = csv.writer(_Echo())
    lines = (writer.writerow(row) for row in csv_rows(params=params, breakdown=breakdown))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    filename = "usage-%s-%s.csv" % (breakdown, _period_slug(params))
    response["Content-Disposition"] = 'attachment; filename="%s"' % filename
    return response


def _period_slug(params: UsageParams) -> str:
    thread_filter = params.thread_filter
    start = thread_filter.created_from.isoformat() if thread_filter.created_from else "start"
    end = thread_filter.created_to.isoformat() if thread_filter.created_to else "now"
    return "%s_%s" % (start, end)
