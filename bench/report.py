"""Write a generated section of docs/benchmarks.md and leave the rest of the file alone.

`python -m bench` and `python -m bench.drills` each own one section, between
`<!-- begin NAME -->` and `<!-- end NAME -->` lines. The text around the sections is
written by hand (what the figures mean, why a target is missed) and survives reruns.
"""

from pathlib import Path

BEGIN = "<!-- begin %s: written by %s, do not edit by hand -->"
END = "<!-- end %s -->"


def section_write(*, path: Path, name: str, writer: str, markdown: str) -> None:
    """Replace section `name` of the file at `path` with `markdown`, or append it if missing.

    Creates the file when it does not exist. Raises ValueError when the file has the
    section's begin line without its end line, rather than guess where it ends.
    """
    begin = BEGIN % (name, writer)
    end = END % name
    block = "%s\n%s\n%s" % (begin, markdown.strip("\n"), end)
    text = path.read_text() if path.exists() else ""

    start = _line_start(text, "<!-- begin %s:" % name)
    if start is None:
        path.write_text(text.rstrip("\n") + ("\n\n" if text.strip() else "") + block + "\n")
        return

    stop = text.find(end, start)
    if stop == -1:
        raise ValueError(
            "Invalid %s: section %r has no end line %r. Add the end line or delete the section."
            % (path, name, end)
        )
    path.write_text(text[:start] + block + text[stop + len(end) :])


def _line_start(text: str, prefix: str) -> int | None:
    position = 0
    for line in text.splitlines(keepends=True):
        if line.startswith(prefix):
            return position
        position += len(line)
    return None
