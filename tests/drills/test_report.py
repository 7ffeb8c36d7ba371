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
