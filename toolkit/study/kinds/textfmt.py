"""Plain-text building blocks for the kinds' ``regent analyze`` summaries (entries are already
disclosure-controlled: a withheld count is ``None``)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

#: The minimum cell of the policy the entry was released under (``regent analyze`` sets it).
MIN_CELL: ContextVar[int] = ContextVar("min_cell", default=10)


def n(x: Any, entry: dict[str, Any] | None = None, key: str = "") -> str:
    """A released count; a withheld one (None) reads ``<k``, or ``withheld`` when the entry marks
    it a complement (``counts_suppressed``/``suppressed``)."""
    if x is not None:
        return str(x)
    marks = (entry or {}).get("counts_suppressed") or {}
    if marks.get(key) == "complementary":
        return "withheld"
    return f"<{MIN_CELL.get()}"


def g(x: Any, fmt: str = ".4g") -> str:
    return "NA" if x is None else format(float(x), fmt)


def p(x: Any) -> str:
    if x is None:
        return "NA"
    return "<0.0001" if float(x) < 1e-4 else f"{float(x):.4f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def coefficients(d: dict[str, Any], ratio: str) -> str:
    """A coefficient table with hazard (HR) or subdistribution hazard (SHR) ratios."""
    key = "hr" if ratio == "HR" else "shr"
    rows = [
        [
            c["term"],
            g(c["coef"]),
            g(c.get("robust_se") or c["se"]),
            f"{g(c[key], '.3f')} ({g(c[key + '_lower'], '.3f')}-{g(c[key + '_upper'], '.3f')})",
            p(c["p"]),
        ]
        for c in d["coefficients"]
    ]
    return table(["term", "coef", "se", f"{ratio} (95% CI)", "p"], rows)
