"""Load synthetic snapshots fast: bench_usage's COPY loader, with secondary indexes rebuilt after.

PostgreSQL maintains every index row by row during COPY; building each index once
after the load is several times faster at a million rows.
"""

from django.db import connection, transaction

from threads.management.commands.bench_usage import bench_rows_insert
from threads.models import Session, Thread

SEED = 1


def _secondary_indexes() -> list[tuple[str, str]]:
    """Return (name, CREATE statement) of every index on the snapshot tables that backs no constraint."""
    tables = [Session._meta.db_table, Thread._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.indexname, i.indexdef
            FROM pg_indexes i
            WHERE i.schemaname = current_schema() AND i.tablename = ANY(%s)
              AND NOT EXISTS (
                SELECT 1 FROM pg_constraint c
                WHERE c.conname = i.indexname AND c.conrelid = (quote_ident(i.tablename))::regclass
              )
            """,
            [tables],
        )
        return cursor.fetchall()


def snapshots_load(*, threads: int) -> None:
    """Insert `threads` synthetic threads (5 per session) with indexes dropped during the COPY."""
    indexes = _secondary_indexes()
    with transaction.atomic():
        with connection.cursor() as cursor:
            for name, _definition in indexes:
                cursor.execute("DROP INDEX %s" % connection.ops.quote_name(name))
        bench_rows_insert(threads=threads, seed=SEED)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for _name, definition in indexes:
                cursor.execute(definition)

    try:
        from threads.services.usage_rollup import usage_rollup_rebuild
    except ImportError:
        # Without rollups the usage page reads the thread table directly.
        return
    usage_rollup_rebuild()
