"""Formatting for snapshot values: money, token counts, durations, times, statuses.

Every tag escapes what it is given; API strings reach the page only through
`format_html` or the template's own autoescaping.
"""

import json
from datetime import datetime
from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma, naturaltime
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from threads.models import SnapshotStatus, Thread

register = template.Library()

CURRENCY_SYMBOLS = {"USD": "$"}
EMPTY = "—"
NO_USAGE_HTML = '<span class="muted" title="The thread has not gone idle yet.">no usage yet</span>'
COST_PENDING_HTML = '<span class="muted" title="The API has not reported it yet.">cost pending</span>'


@register.filter
def money(amount_minor, currency="USD"):
    """Format an amount in minor units (cents) as "$1,234.56"; empty when unknown."""
    if amount_minor is None or amount_minor == "":
        return ""
    try:
        major = Decimal(int(amount_minor)) / 100
    except (TypeError, ValueError):
        return ""
    number = f"{major:,.2f}"
    symbol = CURRENCY_SYMBOLS.get(currency or "USD")
    if symbol:
        return ("-" + symbol + number[1:]) if number.startswith("-") else symbol + number
    return "%s %s" % (number, currency)


@register.filter
def usage_reported(snapshot) -> bool:
    """Return whether the snapshot's JSON carries a usage object (a thread's is null until idle)."""
    raw = getattr(snapshot, "raw", None)
    return isinstance(raw, dict) and isinstance(raw.get("usage"), dict)


@register.simple_tag
def list_cost(snapshot):
    """Render a snapshot's list cost, or why there is none: no usage yet, or cost pending.

    A missing cost is never shown as $0.00: the API leaves it out until it is known.
    """
    if isinstance(snapshot, Thread) and not usage_reported(snapshot) and snapshot.list_cost_amount is None:
        return mark_safe(NO_USAGE_HTML)
    if snapshot.list_cost_amount is None:
        return mark_safe(COST_PENDING_HTML)
    return format_html(
        '<span class="num">{}</span>', money(snapshot.list_cost_amount, snapshot.list_cost_currency or "USD")
    )


@register.filter
def tokens(value):
    """Format a token or request count with thousands separators; a dash when unknown."""
    if value is None:
        return EMPTY
    return intcomma(value)


@register.filter
def duration(seconds):
    """Format seconds as "42.0s", "3m 05s" or "2h 07m"; a dash when unknown."""
    if seconds is None:
        return EMPTY
    seconds = float(seconds)
    if seconds < 60:
        return "%.1fs" % seconds
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return "%dm %02ds" % (minutes, secs)
    hours, minutes = divmod(minutes, 60)
    return "%dh %02dm" % (hours, minutes)


@register.simple_tag
def reltime(value):
    """Render a time as "3 hours ago" with the exact ISO 8601 value in `title`."""
    if not isinstance(value, datetime):
        return EMPTY
    iso = value.isoformat()
    return format_html('<time datetime="{}" title="{}">{}</time>', iso, iso, naturaltime(value))


@register.simple_tag
def status_badge(status):
    """Render a status as a coloured badge; an unknown status keeps its text, flagged."""
    known = status in SnapshotStatus.values
    css_class = "badge badge-%s" % status if known else "badge badge-unknown"
    title = "" if known else "Status not known to this dashboard"
    return format_html('<span class="{}" title="{}">{}</span>', css_class, title, status or "unknown")


@register.filter
def pretty_json(value):
    """Return JSON indented for reading; the template escapes it like any text."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
