"""Statistical disclosure control applied to every aggregate that leaves the toolkit.

One policy: a minimum cell size ``k`` (default 10) — a count between 1 and k-1 is never
released — optional rounding of released counts, and complementary suppression in tables
where a suppressed count could be recovered by subtraction (attrition: a removed count and
the remaining count after it are suppressed together).  Turning the policy off takes an
explicit ``enabled=False`` and is stated in every report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

SUPPRESSED = None  # how a suppressed count is released (JSON null, an empty CSV cell)
_COUNT_PHRASE = re.compile(
    r"(?<![\d.,\-])(\d[\d,]*)(?=\s+(?:rows?|persons?|patients?|people|subjects?|events?|deaths?|"
    r"records?|cases?|individuals?|participants?)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class DisclosurePolicy:
    min_cell: int = 10
    rounding: int | None = None
    enabled: bool = True

    def is_small(self, n: float | int | None) -> bool:
        return self.enabled and n is not None and not pd.isna(n) and 0 < float(n) < self.min_cell

    def count(self, n: float | int | None) -> int | None:
        """A releasable count: None when 1..k-1, rounded when the policy rounds."""
        if n is None or pd.isna(n):
            return None
        n = int(n)
        if not self.enabled:
            return n
        if 0 < n < self.min_cell:
            return SUPPRESSED
        if self.rounding:
            return int(self.rounding * round(n / self.rounding))
        return n

    def describe(self) -> str:
        if not self.enabled:
            return "Disclosure control was turned OFF for this run: small counts may be shown."
        r = f", counts rounded to the nearest {self.rounding}" if self.rounding else ""
        return f"Counts between 1 and {self.min_cell - 1} are suppressed (shown as '<{self.min_cell}'){r}."

    def attrition(self, table: pd.DataFrame) -> pd.DataFrame:
        """Suppress small removals in an attrition table, with complementary suppression.

        ``n`` is cumulative, so a removed count equals the difference of two released ``n``.
        When step i removes 1..k-1 persons, ``removed[i]`` is suppressed and so is the earlier
        ``n[i-1]`` (the final cohort size stays visible), which in turn hides ``removed[i-1]``.
        Outcome events are cumulative too: a small drop in ``events`` hides the earlier value.
        """
        records: list[dict[str, Any]] = [dict(r) for r in table.to_dict("records")]
        if not self.enabled:
            return pd.DataFrame.from_records(records)
        hide: set[tuple[int, str]] = set()
        for i in range(1, len(records)):
            if self.is_small(records[i].get("removed")):
                hide |= {(i, "removed"), (i - 1, "n"), (i - 1, "removed")}
            prev_ev, ev = records[i - 1].get("events"), records[i].get("events")
            if (
                prev_ev is not None
                and ev is not None
                and not pd.isna(prev_ev)
                and not pd.isna(ev)
                and self.is_small(float(prev_ev) - float(ev))
            ):
                hide.add((i - 1, "events"))
        for i, rec in enumerate(records):
            for col in ("n", "removed", "entries", "events"):
                if col in rec:
                    rec[col] = SUPPRESSED if (i, col) in hide else self.count(rec[col])
        return pd.DataFrame.from_records(records).astype(object)

    def table_counts(self, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        out = frame.copy().astype(object)
        for c in columns:
            if c in out.columns:
                out[c] = [self.count(v) for v in frame[c]]
        return out

    def text(self, s: str) -> str:
        """Apply the count rule to counts written in text: ``3 rows with missing values`` -> ``<10 rows ...``."""
        if not self.enabled:
            return s

        def repl(m: re.Match[str]) -> str:
            n = int(m.group(1).replace(",", ""))
            shown = self.count(n)
            return f"<{self.min_cell}" if shown is None else m.group(1) if shown == n else str(shown)

        return _COUNT_PHRASE.sub(repl, s)

    def scrub(self, value: Any, count_keys: frozenset[str]) -> Any:
        """Recursively apply the count rule to every key named in ``count_keys`` in a JSON tree,
        and to counts written in its text (warnings such as ``3 rows ... were left out``)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: (
                    self.count(float(v))
                    if k in count_keys and isinstance(v, int | float | np.integer) and not isinstance(v, bool)
                    else self.scrub(v, count_keys)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.scrub(v, count_keys) for v in value]
        return value


#: Keys of results.json that hold counts of persons or events.
COUNT_KEYS = frozenset(
    {
        "n",
        "events",
        "n_risk",
        "removed",
        "entries",
        "observed",
        "n_evaluable",
        "count",
        "missing",
        "n_events",
        "n_censor",
    }
)
