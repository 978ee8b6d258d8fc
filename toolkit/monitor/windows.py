"""Monitoring windows: consecutive periods of equal length, from midnight UTC of the first call."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from toolkit.monitor.calls import MonitorError

_WINDOW = re.compile(r"^(\d+)([dwh])$")
_UNIT = {"d": dt.timedelta(days=1), "w": dt.timedelta(weeks=1), "h": dt.timedelta(hours=1)}


def parse_window(text: str, *, source: str = "--window") -> dt.timedelta:
    """``'30d'``, ``'2w'`` or ``'12h'`` as a timedelta."""
    m = _WINDOW.match(str(text).strip())
    if not m or int(m.group(1)) == 0:
        raise MonitorError(
            f"{source}: expected a positive whole number of days, weeks or hours, e.g. '30d', '2w', '12h'"
        )
    return int(m.group(1)) * _UNIT[m.group(2)]


@dataclass(frozen=True)
class Window:
    start: dt.datetime  # inclusive, UTC
    end: dt.datetime  # exclusive

    def matured(self, horizon_days: float, as_of: dt.datetime | None) -> bool:
        """Whether every call in the window has had its horizon pass by ``as_of``."""
        return as_of is not None and self.end + dt.timedelta(days=horizon_days) <= as_of


def windows_over(first: dt.datetime, last: dt.datetime, length: dt.timedelta) -> list[Window]:
    """Windows of ``length`` from midnight UTC of ``first`` until one holds ``last``."""
    start = first.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    while start <= last:
        out.append(Window(start, start + length))
        start += length
    return out
