"""Statistical disclosure control applied to every aggregate that leaves the toolkit.

One policy: a minimum cell size ``k`` (default 10) — a count between 1 and k-1 is never
released — optional rounding of released counts, and complementary suppression in every table
whose margins a reader could subtract (:mod:`.audit`: Table 1, attrition, the partitions of a
grouping variable that several tables publish).  A withheld count reads ``<k`` (1..k-1) or
``withheld`` (withheld so that a ``<k`` cannot be derived); :data:`MARKERS`.  Turning the policy
off takes an explicit ``enabled=False`` and is stated in every report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from toolkit.disclosure.audit import Key, LinearTable, Status, protect, protect_partition
from toolkit.disclosure.joint import Decisions, Tabulation, protect_run, run_cells

SUPPRESSED = None  # how a suppressed count is released in JSON (null, with a `suppressed` marker)
#: How a withheld cell reads in HTML, CSV, Markdown and text ({k}: the policy's minimum cell).
MARKERS = {"small": "<{k}", "complementary": "withheld"}
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
    #: the statuses of every count the run publishes, decided together (:meth:`for_run`)
    decided: Decisions | None = field(default=None, compare=False, repr=False)

    def for_run(self, frame: pd.DataFrame, tabulations: Iterable[Tabulation]) -> DisclosurePolicy:
        """This policy with the run's decisions: every count the run's tables show
        (:mod:`.joint`), protected at once on the cohort frame, so that every table withholds
        the same cells."""
        if not self.enabled:
            return self
        return replace(self, decided=protect_run(run_cells(frame, tabulations), min_cell=self.min_cell))

    def decide(self, frame: pd.DataFrame, tabulations: Iterable[Tabulation]) -> Decisions:
        """The statuses of the counts these tabulations show: the run's decisions when they are
        about exactly these counts, otherwise these tabulations protected on their own (a table
        computed outside a run: a notebook, ``regent analyze``)."""
        cells = run_cells(frame, tabulations)
        if not self.enabled:
            return Decisions(dict(cells.table.values), {k: "published" for k in cells.table.values})
        if self.decided is not None and self.decided.applies(cells.table.values):
            return self.decided
        return protect_run(cells, min_cell=self.min_cell)

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

    def cohort_events(self, n: int, events: int | None) -> tuple[int | None, Status | None]:
        """The cohort's outcome events as released, and why not when withheld: as the run decided
        (they add up the events of every group the survival tables show, and with the persons
        without an event they make up the cohort), else the count rule."""
        if events is None or not self.enabled:
            return events, None
        st = self.decided.status.get(("e", 1)) if self.decided is not None else None
        if st in ("small", "complementary"):
            return None, st
        shown = self.count(events)
        return shown, (None if shown is not None else "small")

    def split_rows(self, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Rows that split a published total (cross-validation folds: their persons and events
        add up to the model's): a count 1..k-1 in one row withholds that count in every row (the
        others would give it away by subtraction); released counts are rounded as usual."""
        out = [dict(r) for r in rows]
        if not self.enabled:
            return out
        keys = {k for r in out for k, v in r.items() if k in COUNT_KEYS and isinstance(v, int | float)}
        for k in keys:
            gone = any(self.is_small(r.get(k)) for r in out)
            for r in out:
                if k in r and isinstance(r[k], int | float) and not isinstance(r[k], bool):
                    r[k] = None if gone else self.count(r[k])
        return out

    def describe(self) -> str:
        if not self.enabled:
            return "Disclosure control was turned OFF for this run: small counts may be shown."
        r = f", counts rounded to the nearest {self.rounding}" if self.rounding else ""
        return f"Counts between 1 and {self.min_cell - 1} are suppressed (shown as '<{self.min_cell}'){r}."

    def marker(self, status: str) -> str:
        """How a withheld cell reads: ``<k`` for a count 1..k-1, ``withheld`` for a complement."""
        return MARKERS.get(status, MARKERS["small"]).format(k=self.min_cell)

    def footnote(self, statuses: Iterable[str]) -> str | None:
        """One sentence per table saying why its cells are withheld (None when none is)."""
        seen = set(statuses)
        parts = []
        if "small" in seen:
            parts.append(f"<{self.min_cell}: between 1 and {self.min_cell - 1}, not released")
        if "complementary" in seen:
            parts.append(
                f"withheld: not released so that no <{self.min_cell} can be worked out from the "
                "totals (complementary suppression)"
            )
        return "; ".join(parts) + "." if parts else None

    def partition(self, sizes: Mapping[str, int], *, primary: Iterable[str] = ()) -> dict[str, Status]:
        """Statuses of the parts of a published total (persons per group, events per group).

        Every table of a run that publishes the same partition calls this with the same sizes
        (keyed by level; ``(missing)`` for persons without one) and so withholds the same cells.
        """
        if not self.enabled:
            return {k: "published" for k in sizes}
        parts: dict[Key, int] = {k: int(v) for k, v in sizes.items()}
        got = protect_partition(parts, min_cell=self.min_cell, primary=primary)
        return {str(k): v for k, v in got.items()}

    def protect_table(
        self,
        table: LinearTable,
        *,
        unpublished: Iterable[Key] = (),
        fixed: Mapping[Key, Status] | None = None,
        primary: Iterable[Key] = (),
    ) -> dict[Key, Status]:
        """Primary and complementary suppression of a linear table (:func:`.audit.protect`)."""
        unpublished = set(unpublished)
        if not self.enabled:
            return {k: "unpublished" if k in unpublished else "published" for k in table.values}
        return protect(table, min_cell=self.min_cell, primary=primary, unpublished=unpublished, fixed=fixed)

    def attrition_status(self, table: pd.DataFrame) -> dict[tuple[int, str], Status]:
        """Which attrition cells are withheld: the persons, entries and events remaining after
        each step and the persons each step removed are linked by subtraction (so are the
        entries and events a step removed, never shown but derivable); the final cohort stays."""
        records = table.to_dict("records")
        cells = LinearTable({})
        unpublished = []
        for i, r in enumerate(records):
            for col in ("n", "removed", "entries", "events"):
                v = r.get(col)
                if v is not None and not pd.isna(v):
                    cells.add((i, col), int(v))
        for i in range(1, len(records)):
            if (i - 1, "n") in cells.values and (i, "n") in cells.values:
                parts = [(i, "n")] + ([(i, "removed")] if (i, "removed") in cells.values else [])
                cells.relate((i - 1, "n"), parts)
            for col in ("entries", "events"):
                if (i - 1, col) in cells.values and (i, col) in cells.values:
                    gone = (i, f"{col}_removed")
                    cells.add(gone, cells.values[(i - 1, col)] - cells.values[(i, col)])
                    unpublished.append(gone)
                    cells.relate((i - 1, col), [(i, col), gone])
        last = (len(records) - 1, "n")
        fixed: dict[Key, Status] = {last: "published"} if last in cells.values else {}
        events = (len(records) - 1, "events")  # the cohort's events, as the run released them
        if events in cells.values and self.decided is not None:
            _, why = self.cohort_events(int(cells.values[last]), cells.values[events])
            fixed[events] = why or "published"
        status = self.protect_table(cells, unpublished=unpublished, fixed=fixed)
        return {k: v for k, v in status.items() if v not in ("published", "unpublished")}  # type: ignore[misc]

    def attrition(self, table: pd.DataFrame, *, markers: bool = False) -> pd.DataFrame:
        """The attrition table with withheld counts as None (``markers=True``: as ``<k`` or
        ``withheld``, for CSV and the flow diagram); see :meth:`attrition_status`."""
        records: list[dict[str, Any]] = [dict(r) for r in table.to_dict("records")]
        if not self.enabled:
            return pd.DataFrame.from_records(records)
        hide = self.attrition_status(table)
        for i, rec in enumerate(records):
            for col in ("n", "removed", "entries", "events"):
                if col in rec:
                    st = hide.get((i, col))
                    if st is not None:
                        rec[col] = self.marker(st) if markers else SUPPRESSED
                    else:
                        rec[col] = self.count(rec[col])
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


def group_sizes(s: pd.Series) -> dict[str, int]:
    """Persons per level of a grouping column (as text), and ``(missing)`` when some have none:
    the partition that every table grouped by this column publishes (see ``partition``)."""
    sizes = {str(lv): int(n) for lv, n in s.dropna().astype(str).value_counts().sort_index().items()}
    if s.isna().any():
        sizes["(missing)"] = int(s.isna().sum())
    return sizes


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
        "events_at_horizon",
        "n_fit",
        "events_fit",
    }
)
