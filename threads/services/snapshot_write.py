"""Write parsed snapshots in batches: one lookup and at most one upsert per batch.

A row whose `raw_sha256` and compared columns match what is stored, and that is not
marked gone, is left alone, so a sync that finds no upstream change writes nothing.
Upserts run as INSERT ... ON CONFLICT DO UPDATE, so concurrent writers of the same
id do not fail. On PostgreSQL the statement is built here with one VALUES row per
snapshot. Django's `bulk_create` sends arrays for UNNEST instead, and psycopg quotes
each array element in Python: in a profiled sync that quoting took about half of
the write time. SQLite keeps `bulk_create`.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any

from django.db import connection, models

from threads.models import Session, Thread
from threads.services.snapshot_parse import ParsedSnapshot
from threads.services.usage_rollup import usage_rollup_marking

# Columns that do not come from `raw`, so an equal hash does not prove them equal.
COMPARED_COLUMNS = {
    Session: ("thread_count",),
    Thread: (),
}
# Bookkeeping columns set on every write.
WRITE_COLUMNS = ("fetched_at", "parse_error", "gone_at")
ID_CHUNK_SIZE = 500


@dataclass
class WriteCounts:
    """How many records a write created, updated and left unchanged."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def add(self, other: "WriteCounts") -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged


@dataclass
class SnapshotCandidate:
    """A record to write: its id and hash up front, its columns parsed only if it changed.

    `compared` contains the values of `COMPARED_COLUMNS` that the caller knows.
    """

    id: str
    raw_sha256: str
    parse: Callable[[], ParsedSnapshot]
    compared: dict[str, Any] = field(default_factory=dict)


def snapshot_candidate(snapshot: ParsedSnapshot) -> SnapshotCandidate:
    """Wrap an already parsed snapshot with a usable id."""
    return SnapshotCandidate(
        id=snapshot.id,
        raw_sha256=snapshot.values["raw_sha256"],
        parse=lambda: snapshot,
        compared=snapshot.values,
    )


def snapshot_batch_write(
    *,
    model: type[Session] | type[Thread],
    candidates: list[SnapshotCandidate],
    fetched_at: datetime,
) -> WriteCounts:
    """Parse and upsert the candidates that differ from their stored rows; return the counts.

    Unchanged candidates are never parsed, which is most of the work of a re-run.
    NOTE: so a change to the parser reaches stored rows only when their record
    changes upstream, or after their `raw_sha256` is cleared.
    Every parsed snapshot must carry the same value keys. A repeated id keeps its last
    candidate; the earlier ones count as unchanged.
    """
    by_id = {candidate.id: candidate for candidate in candidates}
    compared = COMPARED_COLUMNS[model]
    counts = WriteCounts(unchanged=len(candidates) - len(by_id))
    if not by_id:
        return counts

    stored = {
        row[0]: row[1:]
        for row in model.objects.filter(pk__in=by_id).values_list("id", "raw_sha256", "gone_at", *compared)
    }

    changed = []
    for candidate_id, candidate in by_id.items():
        row = stored.get(candidate_id)
        if row is not None and _is_unchanged(row, candidate, compared):
            counts.unchanged += 1
            continue
        if row is None:
            counts.created += 1
        else:
            counts.updated += 1
        changed.append(candidate.parse())

    if changed:
        # Thread writes mark their days for the usage rollups in the same transaction.
        with usage_rollup_marking(model=model, snapshots=changed):
            _upsert(model=model, snapshots=changed, fetched_at=fetched_at)
    return counts


def snapshot_mark_gone(*, model: type[Session] | type[Thread], ids: Iterable[str], gone_at: datetime) -> int:
    """Mark these rows gone upstream unless they already are; return how many changed."""
    marked = 0
    for chunk in _chunks(ids, ID_CHUNK_SIZE):
        marked += model.objects.filter(pk__in=chunk, gone_at__isnull=True).update(gone_at=gone_at)
    return marked


def thread_mark_missing_gone(*, session_id: str, listed_ids: set[str], gone_at: datetime) -> int:
    """Mark the session's stored threads that its full thread list left out as gone."""
    stored_ids = Thread.objects.filter(session_id=session_id, gone_at__isnull=True).values_list(
        "id", flat=True
    )
    missing = [thread_id for thread_id in stored_ids if thread_id not in listed_ids]
    return snapshot_mark_gone(model=Thread, ids=missing, gone_at=gone_at)


def _is_unchanged(row: tuple, candidate: SnapshotCandidate, compared: tuple[str, ...]) -> bool:
    raw_sha256, gone_at, *compared_values = row
    if raw_sha256 != candidate.raw_sha256 or gone_at is not None:
        return False
    for column, stored_value in zip(compared, compared_values, strict=True):
        if column in candidate.compared and candidate.compared[column] != stored_value:
            return False
    return True


def _upsert(*, model: type[models.Model], snapshots: list[ParsedSnapshot], fetched_at: datetime) -> None:
    columns = sorted(set(snapshots[0].values) | set(WRITE_COLUMNS))
    if connection.vendor == "postgresql":
        _upsert_values(model=model, snapshots=snapshots, columns=columns, fetched_at=fetched_at)
        return

    rows = [
        model(
            id=snapshot.id,
            fetched_at=fetched_at,
            parse_error=snapshot.parse_error,
            gone_at=None,
            **snapshot.values,
        )
        for snapshot in snapshots
    ]
    model.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=columns,
    )


def _upsert_values(
    *,
    model: type[models.Model],
    snapshots: list[ParsedSnapshot],
    columns: list[str],
    fetched_at: datetime,
) -> None:
    """Run one INSERT ... VALUES ... ON CONFLICT (id) DO UPDATE for the snapshots (PostgreSQL).

    Inserts every concrete column, as `bulk_create` would: a column the snapshots do
    not carry gets its field default. A conflict updates `columns` only.
    """
    quote = connection.ops.quote_name
    inserted = model._meta.concrete_fields
    updated = [model._meta.get_field(column) for column in columns]
    row_placeholder = "(%s)" % ", ".join(["%s"] * len(inserted))
    statement = "INSERT INTO %s (%s) VALUES %s ON CONFLICT (%s) DO UPDATE SET %s" % (
        quote(model._meta.db_table),
        ", ".join(quote(column.column) for column in inserted),
        ", ".join([row_placeholder] * len(snapshots)),
        quote(model._meta.pk.column),
        ", ".join("%s = EXCLUDED.%s" % (quote(column.column), quote(column.column)) for column in updated),
    )

    params = []
    for snapshot in snapshots:
        values = {
            **snapshot.values,
            "id": snapshot.id,
            "parse_error": snapshot.parse_error,
            "fetched_at": fetched_at,
            "gone_at": None,
        }
        for column in inserted:
            value = values[column.attname] if column.attname in values else column.get_default()
            params.append(column.get_db_prep_save(value, connection))

    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
