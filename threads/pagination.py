"""Keyset (cursor) pagination over a sorted queryset.

A page is found by the sort key and id of the row next to it, never by an offset, so
page 1,000 costs what page 1 costs when an index on (sort key, id) exists. The cursor
is an opaque string signed with SECRET_KEY: it contains the sort name, the direction to
walk, and the key and id of the boundary row. Sort keys are expressions that are never
null (nullable columns are wrapped in Coalesce with a sentinel), so one row comparison
orders every row and the expression indexes in migration 0004 match the ORDER BY.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core import signing
from django.db.models import Expression, Q, QuerySet

CURSOR_SALT = "threads.pagination.cursor"
NEXT = "next"
PREVIOUS = "prev"


class PaginationError(ValueError):
    """A sort or cursor from the query string is invalid; the message is shown as is."""


class InvalidSortError(PaginationError):
    pass


class InvalidCursorError(PaginationError):
    pass


@dataclass(frozen=True)
class SortKey:
    """One sortable column: its query parameter name, heading and key expression.

    `kind` sets how the key is encoded in a cursor: "datetime", "number" or "text".
    """

    name: str
    label: str
    expression: Callable[[], Expression]
    kind: str


@dataclass(frozen=True)
class Sort:
    key: SortKey
    descending: bool

    @property
    def param(self) -> str:
        return ("-" if self.descending else "") + self.key.name


@dataclass(frozen=True)
class Cursor:
    sort: str
    direction: str
    value: Any
    row_id: str


@dataclass(frozen=True)
class KeysetPage:
    """Rows of one page and the cursors of its neighbours (None at either end)."""

    rows: list
    next_cursor: str | None
    previous_cursor: str | None

    @property
    def has_other_pages(self) -> bool:
        return self.next_cursor is not None or self.previous_cursor is not None


def sort_parse(*, value: str, keys: dict[str, SortKey], default: str) -> Sort:
    """Parse a sort parameter such as "created" or "-created" (descending).

    Raises InvalidSortError for an unknown column; an empty value takes `default`.
    """
    value = (value or default).strip()
    descending = value.startswith("-")
    name = value.removeprefix("-")
    if name not in keys:
        raise InvalidSortError(
            "Unknown sort column %r. Choose one of: %s." % (name[:40], ", ".join(sorted(keys)))
        )
    return Sort(key=keys[name], descending=descending)


def cursor_encode(*, sort: Sort, direction: str, value: Any, row_id: str) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = int(value)
    payload = {"s": sort.param, "d": direction, "v": value, "i": row_id}
    return signing.dumps(payload, salt=CURSOR_SALT, compress=True)


def cursor_decode(*, token: str, sort: Sort) -> Cursor:
    """Verify and unpack a cursor made for `sort`.

    Raises InvalidCursorError when the signature fails, the payload is malformed, or
    the cursor was made for another sort (it then points into a different order).
    """
    try:
        payload = signing.loads(token, salt=CURSOR_SALT)
    except signing.BadSignature as exc:
        raise InvalidCursorError(
            "The page link is invalid or was made by another server. Showing the first page."
        ) from exc

    try:
        made_for, direction, raw_value, row_id = payload["s"], payload["d"], payload["v"], payload["i"]
        if direction not in (NEXT, PREVIOUS) or not isinstance(row_id, str):
            raise ValueError(direction)
        value = _cursor_value_parse(raw_value, kind=sort.key.kind)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidCursorError("The page link is malformed. Showing the first page.") from exc

    if made_for != sort.param:
        raise InvalidCursorError("The page link belongs to another sort order. Showing the first page.")
    return Cursor(sort=sort.param, direction=direction, value=value, row_id=row_id)


def _cursor_value_parse(raw_value: Any, *, kind: str) -> Any:
    if kind == "datetime":
        parsed = datetime.fromisoformat(raw_value)
        if parsed.tzinfo is None:
            raise ValueError("naive datetime in cursor")
        return parsed
    if kind == "number":
        if isinstance(raw_value, bool) or not isinstance(raw_value, int | float):
            raise ValueError("number expected in cursor")
        return raw_value
    if not isinstance(raw_value, str):
        raise ValueError("text expected in cursor")
    return raw_value


def keyset_page(*, queryset: QuerySet, sort: Sort, cursor: Cursor | None, page_size: int) -> KeysetPage:
    """Return the page of `queryset` that `cursor` points at, in `sort` order.

    Runs one query: it fetches one row more than `page_size` to learn whether a page
    follows in the direction walked. Ties on the sort key are broken by id, so rows
    with equal keys are neither repeated nor skipped across pages.
    """
    walking_back = cursor is not None and cursor.direction == PREVIOUS
    # Walking back reads the reversed order from the boundary, then flips the rows.
    descending = sort.descending != walking_back

    queryset = queryset.annotate(sort_key=sort.key.expression())
    if cursor is not None:
        queryset = queryset.filter(_after_q(value=cursor.value, row_id=cursor.row_id, descending=descending))
    if descending:
        queryset = queryset.order_by("-sort_key", "-id")
    else:
        queryset = queryset.order_by("sort_key", "id")

    rows = list(queryset[: page_size + 1])
    has_more = len(rows) > page_size
    rows = rows[:page_size]
    if walking_back:
        rows.reverse()

    if not rows:
        return KeysetPage(rows=[], next_cursor=None, previous_cursor=None)

    has_next = has_more if not walking_back else True
    has_previous = (cursor is not None) if not walking_back else has_more
    first, last = rows[0], rows[-1]
    return KeysetPage(
        rows=rows,
        next_cursor=(
            cursor_encode(sort=sort, direction=NEXT, value=last.sort_key, row_id=last.id)
            if has_next
            else None
        ),
        previous_cursor=(
            cursor_encode(sort=sort, direction=PREVIOUS, value=first.sort_key, row_id=first.id)
            if has_previous
            else None
        ),
    )


def _after_q(*, value: Any, row_id: str, descending: bool) -> Q:
    # key >= v AND (key > v OR id > last): the first part is a range the index scan
    # starts from, the second only drops the ties already shown.
    if descending:
        return Q(sort_key__lte=value) & (Q(sort_key__lt=value) | Q(id__lt=row_id))
    return Q(sort_key__gte=value) & (Q(sort_key__gt=value) | Q(id__gt=row_id))
