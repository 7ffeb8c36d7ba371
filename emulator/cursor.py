"""Opaque page cursors and cursor-based page selection.

A cursor is ``base64url(JSON {"k": [time_us, id], "o": order})``: ``k`` is the sort key
of the last item of the page it came from and ``o`` the order of that request. A cursor
that points backwards (a sessions ``prev_page``) also carries ``"d": "prev"``.
"""

import base64
import binascii
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import invalid_request


@dataclass(frozen=True, slots=True)
class Cursor:
    """A decoded cursor: the sort key, the order it was made for, and whether it points backwards."""

    key: tuple[int, str]
    order: str
    backwards: bool = False


@dataclass(slots=True)
class Page:
    """Selected item positions, in response order, and cursors to the neighbouring pages."""

    positions: list[int]
    next_page: str | None
    prev_page: str | None


def cursor_encode(key: tuple[int, str], order: str, *, backwards: bool = False) -> str:
    payload = {"k": [key[0], key[1]], "o": order}
    if backwards:
        payload["d"] = "prev"
    raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def cursor_decode(text: str, *, order: str, allow_backwards: bool) -> Cursor:
    """Decode a ``page`` parameter.

    Raises a 400 ApiError when the text does not decode to a cursor, when the cursor was
    made for a different ``order``, or when it points backwards on a forward-only list.
    """
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid_request("page: invalid cursor; pass a next_page or prev_page value unchanged.") from None

    key = payload.get("k") if isinstance(payload, dict) else None
    valid_key = isinstance(key, list) and len(key) == 2 and isinstance(key[0], int) and isinstance(key[1], str)
    direction = payload.get("d") if isinstance(payload, dict) else None
    if not valid_key or payload.get("o") not in ("asc", "desc") or direction not in (None, "prev"):
        raise invalid_request("page: invalid cursor; pass a next_page or prev_page value unchanged.")
    if payload["o"] != order:
        raise invalid_request(
            "page: the cursor was made for order=%s but this request has order=%s; repeat the original order." % (payload["o"], order)
        )
    if direction == "prev" and not allow_backwards:
        raise invalid_request("page: this list is forward-only; pass a next_page value.")
    return Cursor(key=(key[0], key[1]), order=order, backwards=direction == "prev")


def _scan(start: int, step: int, size: int, matches: Callable[[int], bool], wanted: int) -> list[int]:
    found = []
    position = start
    while 0 <= position < size and len(found) < wanted:
        if matches(position):
            found.append(position)
        position += step
    return found


def page_select(
    keys: Sequence[tuple[int, str]],
    *,
    order: str,
    limit: int,
    matches: Callable[[int], bool],
    cursor: Cursor | None,
    with_prev: bool,
) -> Page:
    """Select one page from items whose sort ``keys`` are ascending.

    ``matches(position)`` applies the request's filters. ``order`` is ``asc`` or ``desc``.
    ``prev_page`` is only computed when ``with_prev`` is true (the sessions list).
    """
    size = len(keys)
    step = 1 if order == "asc" else -1

    if cursor is None:
        start = 0 if step == 1 else size - 1
        backwards = False
    elif not cursor.backwards:
        start = bisect_right(keys, cursor.key) if step == 1 else bisect_left(keys, cursor.key) - 1
        backwards = False
    else:
        start = bisect_left(keys, cursor.key) - 1 if step == 1 else bisect_right(keys, cursor.key)
        backwards = True

    if not backwards:
        found = _scan(start, step, size, matches, limit + 1)
        positions = found[:limit]
        has_next = len(found) > limit
        has_prev = bool(positions) and with_prev and bool(_scan(positions[0] - step, -step, size, matches, 1))
    else:
        found = _scan(start, -step, size, matches, limit + 1)
        positions = found[:limit][::-1]
        has_prev = len(found) > limit
        has_next = bool(positions) and bool(_scan(positions[-1] + step, step, size, matches, 1))

    next_page = cursor_encode(keys[positions[-1]], order) if has_next else None
    prev_page = cursor_encode(keys[positions[0]], order, backwards=True) if has_prev and with_prev else None
    return Page(positions=positions, next_page=next_page, prev_page=prev_page)
