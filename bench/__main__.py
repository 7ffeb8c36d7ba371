"""Seed, measure and report sync, bulk archive and page speed: `python -m bench`.

Each stage runs in its own process (`bench.stage`) on its own PostgreSQL database
(`bench_sync`, `bench_archive`, `bench_pages`), created here and dropped afterwards,
with Redis database 10 (REDIS_URL) for the limiter and the Celery broker. Prints one
table with each target next to its figure, and writes it to docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import targets
from bench.report import section_write
from bench.stack import (
    DEFAULT_REDIS_URL,
    PROJECT_ROOT,
    database_drop,
    database_recreate,
    database_url_for,
    django_env,
    machine_facts,
)

STAGE_TIMEOUT_SECONDS = 3600
FULL_SIZES = {"sync": 20_000, "sync_memory": 100_000, "archive": 1_000, "pages": (10_000, 1_000_000)}
QUICK_SIZES = {"sync": 2_000, "sync_memory": 10_000, "archive": 200, "pages": (10_000, 50_000)}
PAGE_NAMES_USAGE = {"usage page"}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a CI smoke run")
    parser.add_argument("--skip-1m", action="store_true", help="time the pages at the small size only")
    parser.add_argument(
        "--out",
        type=Path,
        default=PROJECT_ROOT / "docs" / "benchmarks.md",
        help="Markdown file whose benchmark section is rewritten",
    )
    parser.add_argument("--no-write", action="store_true", help="print the table, do not write --out")
    parser.add_argument("--archive-workers", type=int, default=1, help="Celery worker processes (default 1)")
    parser.add_argument("--archive-concurrency", type=int, default=8, help="pool size per worker (default 8)")
    args = parser.parse_args()

    redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    page_sizes = list(sizes["pages"][:1] if args.skip_1m else sizes["pages"])
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-"))
    print("Stage logs in %s" % log_dir, flush=True)

    results = {}
    results["sync"] = _stage(
        "sync",
        ["--size", str(sizes["sync"])],
        redis_url=redis_url,
        log_dir=log_dir,
        settings={
            "ANTHROPIC_RATE_LIMIT_PER_SECOND": 100000,
            "ANTHROPIC_RATE_LIMIT_BURST": 100000,
            "LOG_LEVEL": "WARNING",
        },
    )
    results["sync_memory"] = _stage(
        "sync",
        ["--size", str(sizes["sync_memory"])],
        redis_url=redis_url,
        log_dir=log_dir,
        settings={
            "ANTHROPIC_RATE_LIMIT_PER_SECOND": 100000,
            "ANTHROPIC_RATE_LIMIT_BURST": 100000,
            "LOG_LEVEL": "WARNING",
        },
    )
    results["archive"] = _stage(
        "archive",
        [
            "--size",
            str(sizes["archive"]),
            "--workers",
            str(args.archive_workers),
            "--concurrency",
            str(args.archive_concurrency),
        ],
        redis_url=redis_url,
        log_dir=log_dir,
        settings={
            "ANTHROPIC_RATE_LIMIT_PER_SECOND": 100,
            "ANTHROPIC_RATE_LIMIT_BURST": 10,
            "ARCHIVE_GRACE_SECONDS": 0,
            "LOG_LEVEL": "INFO",
        },
    )
    results["pages"] = _stage(
        "pages",
        [arg for size in page_sizes for arg in ("--size", str(size))],
        redis_url=redis_url,
        log_dir=log_dir,
        settings={"LOG_LEVEL": "WARNING"},
    )

    table = report_table(results, page_sizes=page_sizes, full_sizes=FULL_SIZES["pages"])
    print(table)
    if not args.no_write:
        markdown = report_markdown(
            table=table,
            argv=sys.argv[1:],
            minutes=(time.monotonic() - started) / 60,
            skipped=_skipped(args),
        )
        section_write(path=args.out, name="bench", writer="python -m bench", markdown=markdown)
        print("Wrote %s" % args.out)
    return 0


def _skipped(args) -> list[str]:
    notes = []
    if args.quick:
        notes.append("--quick: small sizes, so the figures are a smoke test, not the targets' sizes.")
    if args.skip_1m:
        notes.append("--skip-1m: pages were timed at 10,000 threads only; the 1M ratios were not measured.")
    return notes


def _stage(name: str, stage_args: list[str], *, redis_url: str, log_dir: Path, settings: dict) -> dict:
    """Run one stage on a fresh `bench_<name>` database and return its JSON figures."""
    from tests.support.services import redis_clear_project_keys

    database_url = database_url_for(name="bench_%s" % name)
    out = log_dir / ("%s-%d.json" % (name, time.time_ns()))
    log_path = log_dir / ("%s.log" % out.stem)
    command = [sys.executable, "-m", "bench.stage", name, *stage_args, "--out", str(out)]
    print("Running %s" % " ".join(command), flush=True)

    database_recreate(database_url)
    redis_clear_project_keys(redis_url)
    started = time.monotonic()
    try:
        with open(log_path, "wb") as log:
            env = django_env(database_url=database_url, redis_url=redis_url, **settings)
            completed = subprocess.run(
                command,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=STAGE_TIMEOUT_SECONDS,
                check=False,
            )
    finally:
        redis_clear_project_keys(redis_url)
        database_drop(database_url)

    if completed.returncode != 0:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise SystemExit(
            "Stage %s failed with exit status %d. Log %s ends:\n%s"
            % (name, completed.returncode, log_path, tail)
        )
    print("  %s done in %.0f s" % (name, time.monotonic() - started), flush=True)
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def _row(rows: list, label: str, figure: str, target: str = "", verdict: object = "") -> None:
    rows.append((label, figure, target, str(verdict)))


def report_table(results: dict, *, page_sizes: list[int], full_sizes: tuple[int, int]) -> str:
    rows: list[tuple[str, str, str, str]] = []

    sync = results["sync"]
    ratio = sync["seconds"] / sync["ideal_seconds"]
    _row(
        rows,
        "Sync, %s threads at %d ms latency" % (f"{sync['threads']:,}", sync["latency_ms"]),
        "%.0f threads/s (%.1f s, %d API calls, concurrency %d)"
        % (sync["threads"] / sync["seconds"], sync["seconds"], sync["api_calls"], sync["concurrency"]),
    )
    _row(
        rows,
        "  CPU time of the sync process",
        "%.1f s, %.0f%% of one core (%.0f us per record)"
        % (
            sync["cpu_seconds"],
            100 * sync["cpu_seconds"] / sync["seconds"],
            1e6 * sync["cpu_seconds"] / sync["records_seen"],
        ),
    )
    _row(
        rows,
        "  time / latency-bound ideal (%.2f s)" % sync["ideal_seconds"],
        "%.2fx" % ratio,
        "<= %.2fx" % targets.SYNC_IDEAL_RATIO_MAX,
        targets.at_most(ratio, targets.SYNC_IDEAL_RATIO_MAX),
    )
    _row(rows, "  peak resident memory", "%.0f MB" % _mb(sync["maxrss_mib"]))

    memory = results["sync_memory"]
    peak = _mb(memory["maxrss_mib"])
    _row(
        rows,
        "Sync, %s threads: peak resident memory" % f"{memory['threads']:,}",
        "%.0f MB (%.0f threads/s)" % (peak, memory["threads"] / memory["seconds"]),
        "< %.0f MB" % targets.SYNC_PEAK_MB_MAX,
        targets.at_most(peak, targets.SYNC_PEAK_MB_MAX, unit=" MB"),
    )

    archive = results["archive"]
    share = archive["per_second"] / archive["rate_limit"]
    _row(
        rows,
        "Bulk archive, %s threads, emulator at %d requests/s"
        % (f"{archive['threads']:,}", archive["rate_limit"]),
        "%.1f archived/s over %.1f s (%d archived, %d failed, job %s)"
        % (
            archive["per_second"],
            archive["seconds"],
            archive["archived"],
            archive["failed"],
            archive["job_status"],
        ),
    )
    _row(
        rows,
        "  share of the rate-limit ceiling",
        "%.1f%%" % (share * 100),
        ">= %.0f%%" % (targets.ARCHIVE_CEILING_SHARE_MIN * 100),
        targets.at_least(share, targets.ARCHIVE_CEILING_SHARE_MIN, percent=True),
    )
    _row(
        rows,
        "  emulator requests, by status",
        "%d: %s" % (archive["emulator_requests"], json.dumps(archive["emulator_statuses"], sort_keys=True)),
    )

    pages = results["pages"]
    small = str(page_sizes[0])
    large = str(page_sizes[-1]) if len(page_sizes) > 1 else None
    large_label = f"{int(large):,}" if large else f"{full_sizes[1]:,} (skipped)"
    _row(
        rows,
        "Pages (median of %d, server time)" % 7,
        "%s threads | %s threads | ratio | queries" % (f"{int(small):,}", large_label),
    )
    for name, small_page in pages[small]["pages"].items():
        limit = targets.USAGE_PAGE_RATIO_MAX if name in PAGE_NAMES_USAGE else targets.PAGE_RATIO_MAX
        if large:
            large_page = pages[large]["pages"][name]
            page_ratio = large_page["median_ms"] / small_page["median_ms"]
            figure = "%.1f ms | %.1f ms | %.2fx | %d / %d" % (
                small_page["median_ms"],
                large_page["median_ms"],
                page_ratio,
                small_page["queries"],
                large_page["queries"],
            )
        else:
            page_ratio = None
            figure = "%.1f ms | - | - | %d" % (small_page["median_ms"], small_page["queries"])
        _row(rows, "  " + name, figure, "<= %.1fx" % limit, targets.at_most(page_ratio, limit))
    loads = ", ".join(
        "%s threads in %s"
        % (
            f"{int(size):,}",
            "(loaded earlier)"
            if pages[size]["load_seconds"] is None
            else "%.0f s" % pages[size]["load_seconds"],
        )
        for size in pages
    )
    _row(rows, "  snapshot load (COPY, indexes rebuilt after)", loads)

    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    header = ("measure", "figure", "target", "result")
    lines = [
        "%s | %s | %s | %s"
        % (header[0].ljust(widths[0]), header[1].ljust(widths[1]), header[2].ljust(widths[2]), header[3])
    ]
    lines.append("-" * (sum(widths) + 9 + 10))
    for label, figure, target, verdict in rows:
        lines.append(
            "%s | %s | %s | %s"
            % (label.ljust(widths[0]), figure.ljust(widths[1]), target.ljust(widths[2]), verdict)
        )
    return "\n".join(lines)


def _mb(mib: float) -> float:
    return mib * 2**20 / 1e6


def report_markdown(*, table: str, argv: list[str], minutes: float, skipped: list[str]) -> str:
    facts = machine_facts()
    command = "python -m bench" + ("" if not argv else " " + " ".join(shlex.quote(arg) for arg in argv))
    lines = [
        "## Benchmark run",
        "",
        "Written by `%s` (`make bench`) on %s; the run took %.0f minutes."
        % (command, datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), minutes),
        "",
        "Machine: %s cores, %s memory, %s; Python %s, PostgreSQL %s."
        % (facts["cores"], facts["memory"], facts["cpu"], facts["python"], facts["postgresql"]),
        "",
        "Load average (1, 5, 15 min) when the run ended: %.2f, %.2f, %.2f. Above the core count, other "
        "processes competed for the CPU during the run, which slows every figure here." % os.getloadavg(),
        "",
    ]
    lines += ["- " + note for note in skipped]
    lines += ["", "```text", table, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
