"""Cursor pagination for the REST API.

Sessions and threads are paged with the browse pages' keyset helpers
(`threads.pagination`), so the API offers the same sorts, walks the same
(sort key, id) indexes and never repeats or skips a row between pages. Archive jobs
and their items use DRF's CursorPagination. Every list answers
`{"next": url or null, "previous": url or null, "results": [...]}`.
"""

from dataclasses import dataclass

from rest_framework import pagination, serializers
from rest_framework.exceptions import NotFound
from rest_framework.utils.urls import replace_query_param

from threads.pagination import (
    Cursor,
    KeysetPage,
    PaginationError,
    Sort,
    SortKey,
    cursor_decode,
    sort_parse,
)

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class KeysetParams:
    """A validated sort, cursor and page size from the query string."""

    sort: Sort
    cursor: Cursor | None
    page_size: int


def sort_choices(keys: dict[str, SortKey]) -> list[str]:
    """Return every accepted `sort` value: each column ascending and descending."""
    return [value for name in keys for value in (name, "-" + name)]


INVALID_CURSOR_MESSAGE = (
    "Invalid cursor: use the `next` or `previous` URL of a response with the same sort, "
    "or leave cursor out for the first page."
)


class KeysetQuerySerializer(serializers.Serializer):
    """The `sort`, `cursor` and `page_size` query parameters of a keyset-paged list.

    Subclasses set `sort` to a ChoiceField of their columns (see `sort_choices`).
    """

    sort = serializers.CharField(required=False)
    cursor = serializers.CharField(
        required=False, help_text="Opaque position from the `next` or `previous` URL of an earlier response."
    )
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_PAGE_SIZE, default=DEFAULT_PAGE_SIZE
    )


def keyset_params_parse(
    *, query, query_serializer_class: type[KeysetQuerySerializer], keys: dict[str, SortKey], default_sort: str
) -> KeysetParams:
    """Validate `sort`, `cursor` and `page_size`.

    Raises serializers.ValidationError with one entry per invalid parameter. A cursor
    made for another sort, or altered, is invalid: the client starts again from the
    first page instead of silently getting it.
    """
    query_serializer = query_serializer_class(data=query)
    query_serializer.is_valid(raise_exception=True)
    values = query_serializer.validated_data

    try:
        sort = sort_parse(value=values.get("sort", ""), keys=keys, default=default_sort)
    except PaginationError as exc:
        raise serializers.ValidationError({"sort": [str(exc)]}) from exc

    cursor = None
    if values.get("cursor"):
        try:
            cursor = cursor_decode(token=values["cursor"], sort=sort)
        except PaginationError as exc:
            raise serializers.ValidationError({"cursor": [INVALID_CURSOR_MESSAGE]}) from exc

    return KeysetParams(sort=sort, cursor=cursor, page_size=values["page_size"])


def keyset_page_data(*, request, page: KeysetPage, results: list) -> dict:
    """Return the response body of one keyset page, with absolute URLs of its neighbours."""
    url = request.build_absolute_uri()
    return {
        "next": _cursor_url(url, page.next_cursor),
        "previous": _cursor_url(url, page.previous_cursor),
        "results": results,
    }


def _cursor_url(url: str, cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return replace_query_param(url, "cursor", cursor)


def keyset_page_serializer(name: str, item_serializer: type[serializers.Serializer]):
    """Return a serializer class that documents a keyset page of `item_serializer` rows."""
    return type(
        name,
        (serializers.Serializer,),
        {
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item_serializer(many=True),
        },
    )


class _CursorPagination(pagination.CursorPagination):
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def decode_cursor(self, request):
        # DRF returns 404 for a bad cursor; it is invalid input, like a bad sort.
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise serializers.ValidationError({"cursor": [INVALID_CURSOR_MESSAGE]}) from exc


class ArchiveJobCursorPagination(_CursorPagination):
    """Archive jobs, newest first; ties on creation time are broken by id."""

    ordering = ("-created_at", "-id")


class ArchiveItemCursorPagination(_CursorPagination):
    """Archive items in the order they were frozen (by id)."""

    ordering = ("id",)


__all__ = [
    "ArchiveItemCursorPagination",
    "ArchiveJobCursorPagination",
    "KeysetParams",
    "KeysetQuerySerializer",
    "keyset_page_data",
    "keyset_page_serializer",
    "keyset_params_parse",
    "sort_choices",
]
