"""Rewriting one generated section of docs/benchmarks.md."""

import pytest

from bench.report import section_write


def test_section_write_creates_missing_file(tmp_path):
    path = tmp_path / "benchmarks.md"

    section_write(path=path, name="bench", writer="python -m bench", markdown="table")

    assert "\ntable\n<!-- end bench -->" in path.read_text()


def test_section_write_appends_new_section(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nHand-written.\n")

    section_write(path=path, name="drills", writer="python -m bench.drills", markdown="PASS")

    assert path.read_text().startswith("# Benchmarks\n\nHand-written.\n\n<!-- begin drills:")


def test_section_write_replaces_only_its_section(tmp_path):
    path = tmp_path / "benchmarks.md"
    section_write(path=path, name="bench", writer="python -m bench", markdown="old bench")
    section_write(path=path, name="drills", writer="python -m bench.drills", markdown="old drills")
    path.write_text(path.read_text() + "\nAnalysis by hand.\n")

    section_write(path=path, name="bench", writer="python -m bench", markdown="new bench")

    text = path.read_text()
    assert "old bench" not in text
    assert "new bench" in text
    assert "old drills" in text
    assert "Analysis by hand." in text


def test_section_write_rejects_unterminated_section(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("<!-- begin bench: written by python -m bench, do not edit by hand -->\ntable\n")

    with pytest.raises(ValueError, match="has no end line '<!-- end bench -->'"):
        section_write(path=path, name="bench", writer="python -m bench", markdown="table")


def test_drills_report_lists_results():
    from bench.drills import DrillResult, report_markdown

    results = [
        DrillResult(name="kill-worker", passed=True, threads=3, archived=3),
        DrillResult(name="api-faults", threads=3, archived=2, failed=1, problems=["2 of 3 items archived"]),
    ]

    markdown = report_markdown(results=results, argv=["--threads", "3"], minutes=1.0)

    assert "`python -m bench.drills --threads 3`" in markdown
    assert "PASS kill-worker" in markdown
    assert "FAIL api-faults" in markdown
    assert "    problem: 2 of 3 items archived" in markdown


def _bench_results() -> dict:
    sync = {
        "threads": 20_000,
        "latency_ms": 20,
        "concurrency": 8,
        "seconds": 30.0,
        "ideal_seconds": 2.7,
        "cpu_seconds": 27.0,
        "api_calls": 1010,
        "records_seen": 21_000,
        "maxrss_mib": 160.0,
    }
    page = {"median_ms": 10.0, "queries": 4}
    return {
        "sync": sync,
        "sync_memory": {**sync, "threads": 100_000, "maxrss_mib": 190.0},
        "archive": {
            "threads": 1000,
            "archived": 1000,
            "failed": 0,
            "seconds": 10.5,
            "per_second": 95.2,
            "rate_limit": 100,
            "job_status": "finished",
            "emulator_requests": 1000,
            "emulator_statuses": {"200": 1000},
        },
        "pages": {
            "10000": {"load_seconds": 1.0, "pages": {"usage page": page}},
            "1000000": {"load_seconds": 100.0, "pages": {"usage page": {**page, "median_ms": 25.0}}},
        },
    }


def test_bench_report_marks_missed_sync_target():
    from bench.__main__ import report_table

    table = report_table(_bench_results(), page_sizes=[10_000, 1_000_000], full_sizes=(10_000, 1_000_000))

    ratio_line = next(line for line in table.splitlines() if "latency-bound ideal" in line)
    assert "11.11x" in ratio_line
    assert "| MISS" in ratio_line


def test_bench_report_shows_sync_cpu_share():
    from bench.__main__ import report_table

    table = report_table(_bench_results(), page_sizes=[10_000, 1_000_000], full_sizes=(10_000, 1_000_000))

    assert "27.0 s, 90% of one core (1286 us per record)" in table


def test_bench_report_passes_usage_ratio_under_limit():
    from bench.__main__ import report_table

    table = report_table(_bench_results(), page_sizes=[10_000, 1_000_000], full_sizes=(10_000, 1_000_000))

    usage_line = next(line for line in table.splitlines() if line.strip().startswith("usage page"))
    assert usage_line.endswith("PASS")
