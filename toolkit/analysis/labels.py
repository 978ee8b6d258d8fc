"""How numbers and levels are written for readers (no plotting library needed): p-values as
journals print them and the natural order of levels such as age bands."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence


def format_p(p: float | None) -> str:
    """A p-value as journals print it (AMA/BMJ style): ``<0.001``; three decimals below 0.01 and
    near 0.05 (so that rounding never moves a value across it); otherwise two; ``>0.99``.

    >>> [format_p(x) for x in (8.07e-80, 0.0042, 0.0496, 0.213, 0.996)]
    ['<0.001', '0.004', '0.050', '0.21', '>0.99']
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "NA"
    p = float(p)
    if p < 0.001:
        return "<0.001"
    if p > 0.99:
        return ">0.99"
    if p < 0.01 or 0.045 <= p < 0.055:
        return f"{p:.3f}"
    return f"{p:.2f}"


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def natural_key(level: str) -> tuple[int, float, str]:
    """Sort key that puts numeric bands in numeric order: ``<65``, ``65-74``, ``75-84``, ``85+``
    (a plain sort puts ``<65`` last); text levels after numeric ones, alphabetically."""
    m = _NUMBER.search(level)
    if m is None:
        return (1, 0.0, level)
    x = float(m.group())
    if level.lstrip().startswith("<"):
        x -= 0.5  # "<65" comes before "65-74"
    return (0, x, level)


def ordered(levels: Iterable[str], declared: Sequence[str] | None = None) -> list[str]:
    """``levels`` in the declared order (those not declared after, naturally ordered)."""
    levels = list(levels)
    first = [lv for lv in (declared or []) if lv in levels]
    return first + sorted((lv for lv in levels if lv not in first), key=natural_key)
