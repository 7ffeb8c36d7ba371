"""Benchmarks (`python -m bench`) and fault drills (`python -m bench.drills`).

Both start their own emulator, Celery workers and databases named `bench_*` on the
PostgreSQL server in DATABASE_URL. They reuse `tests/support/` to start the emulator
and workers, so they need the development requirements installed.
"""
