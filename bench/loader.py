"""Load synthetic snapshots fast with bench_usage's COPY loader, for the pages stage.

The loader drops the snapshot tables' secondary indexes during the COPY and builds
each once afterwards: PostgreSQL would otherwise maintain every index row by row,
which is several times slower at a million rows.
"""

from threads.management.commands.bench_usage import bench_rows_insert
from threads.services.usage_rollup import usage_rollup_rebuild

SEED = 1
# A primary thread and 19 children, the shape the sync and archive stages use too.
THREADS_PER_SESSION = 20


def snapshots_load(*, threads: int) -> None:
    """Insert `threads` synthetic threads (THREADS_PER_SESSION per session) and rebuild the usage rollups."""
    bench_rows_insert(threads=threads, seed=SEED, threads_per_session=THREADS_PER_SESSION)
    usage_rollup_rebuild()
