"""Targets of the benchmark and how a measured figure compares with one."""

from dataclasses import dataclass

SYNC_IDEAL_RATIO_MAX = 1.25
ARCHIVE_CEILING_SHARE_MIN = 0.90
PAGE_RATIO_MAX = 1.5
USAGE_PAGE_RATIO_MAX = 3.0
SYNC_PEAK_MB_MAX = 250.0


@dataclass(frozen=True)
class Verdict:
    """PASS, MISS or SKIPPED, with the margin of a miss in words."""

    label: str
    detail: str = ""

    def __str__(self) -> str:
        return "%s %s" % (self.label, self.detail) if self.detail else self.label


def at_most(value: float | None, limit: float, *, unit: str = "x") -> Verdict:
    """Judge a figure that must not exceed `limit`; a miss says by how much it does."""
    if value is None:
        return Verdict("SKIPPED")
    if value <= limit:
        return Verdict("PASS")
    return Verdict(
        "MISS",
        "(%.2f%s over the %.2f%s limit, %.0f%% more)"
        % (value - limit, unit, limit, unit, (value / limit - 1) * 100),
    )


def at_least(value: float | None, floor: float, *, percent: bool = False) -> Verdict:
    """Judge a figure that must reach `floor`; a miss says how far short it is."""
    if value is None:
        return Verdict("SKIPPED")
    if value >= floor:
        return Verdict("PASS")
    if percent:
        return Verdict("MISS", "(%.1f points short of %.0f%%)" % ((floor - value) * 100, floor * 100))
    return Verdict("MISS", "(%.2f short of %.2f)" % (floor - value, floor))
