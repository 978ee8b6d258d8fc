"""Reference distributions of a model's inputs and predicted risk, for monitoring in service.

Taken from the development data at study-run time and carried in results.json (the model's
``reference``) and from there in the agent bundle (``reference.json``).  Nothing row-level
leaves: each input is a binned histogram in which every bin holds at least ``k`` persons (the
disclosure policy's minimum cell), with the counts of persons whose value was missing, imputed
by the model, or outside the training range (1st–99th percentile), each through the policy.

Binning (:func:`bin_edges`):

* a number: cut points at the deciles of the persons with a value, rounded to three significant
  digits (a cut point is then never one person's exact value), outer bins open (``-inf``,
  ``+inf``: the extremes are never released); bins are ``(lower, upper]``;
* a text (category): one bin per level;
* then the smallest bin is merged into its smaller neighbour (numbers) or the next smallest bin
  (levels) until every bin holds ``k`` or more persons.

When an input's missing count is small (1..k-1, suppressed), its bin counts are rounded to
multiples of ``k`` as well, so that the count with a value, and with it the missing count,
cannot be recovered by subtracting the bins from the cohort size.

:func:`bin_index` places one value in a reference's bins (the serving path): every number and
every known level has exactly one bin.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from toolkit.analysis.design import is_categorical
from toolkit.disclosure import DisclosurePolicy

DECILES = tuple(np.round(np.arange(0.1, 1.0, 0.1), 1))


class _Ref(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReferenceBin(_Ref):
    """One bin: ``(lower, upper]`` for a number (null = unbounded), or a set of levels."""

    lower: float | None = Field(None, description="Numbers: exclusive lower bound; null = -infinity.")
    upper: float | None = Field(None, description="Numbers: inclusive upper bound; null = +infinity.")
    levels: list[str] | None = Field(None, description="Categories: the levels in this bin.")
    n: int = Field(description="Development persons in the bin (at least the minimum cell).")


class InputReference(_Ref):
    """The development distribution of one input (or of the predicted risk)."""

    name: str = Field(description="The input, or `risk` for the predicted risk.")
    kind: Literal["number", "category"] = Field(description="How it is binned.")
    n: int = Field(description="Development persons (with or without a value).")
    missing: int | None = Field(description="Persons without a value; null = 1..k-1 (suppressed).")
    imputed: int | None = Field(
        description="Persons whose missing value the model's preprocessing filled in (its median, "
        "or the reference level); null = suppressed."
    )
    out_of_range: int | None = Field(
        description="Persons outside the training range (1st–99th percentile); null = suppressed."
    )
    rounded: bool = Field(
        False, description="Bin counts rounded to multiples of k (the missing count was suppressed)."
    )
    bins: list[ReferenceBin] = Field(description="The histogram of the persons with a value.")

    @property
    def shares(self) -> np.ndarray:
        """Each bin's share of the persons with a value."""
        counts = np.asarray([b.n for b in self.bins], float)
        return counts / counts.sum()

    @property
    def with_value(self) -> int:
        return int(sum(b.n for b in self.bins))

    def rate(
        self, key: Literal["missing", "imputed", "out_of_range"], *, min_cell: int
    ) -> tuple[float, float]:
        """The development rate of ``key`` as ``(low, high)``: equal unless the count was
        suppressed, then ``(1/n, (k-1)/n)``."""
        value, n = getattr(self, key), max(self.n, 1)
        if value is None:
            return 1 / n, (min_cell - 1) / n
        return value / n, value / n


class ReferenceDistributions(_Ref):
    """Every model input and the predicted risk in the development data (binned, disclosure-safe)."""

    min_cell: int = Field(description="Every bin holds at least this many persons.")
    n: int = Field(description="Development persons.")
    inputs: list[InputReference] = Field(description="One per model input, in the model's order.")
    risk: InputReference = Field(description="The model's predicted risk at its horizon.")

    def input(self, name: str) -> InputReference | None:
        return next((r for r in self.inputs if r.name == name), None)


def _round_sig(x: float, digits: int = 3) -> float:
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(round(x, digits - 1 - math.floor(math.log10(abs(x)))))


def bin_edges(values: np.ndarray) -> list[float]:
    """Cut points: the deciles of ``values``, rounded to three significant digits, distinct."""
    if len(values) == 0:
        return []
    q = np.quantile(values, DECILES)
    return sorted({_round_sig(float(v)) for v in q})


def _numeric_counts(values: np.ndarray, edges: Sequence[float]) -> list[int]:
    # bin j holds (edges[j-1], edges[j]]: searchsorted(side="left") gives that index
    idx = np.searchsorted(np.asarray(edges, float), values, side="left")
    return [int(c) for c in np.bincount(idx, minlength=len(edges) + 1)]


def _merge_numeric(edges: list[float], counts: list[int], k: int) -> tuple[list[float], list[int]]:
    """Merge the smallest bin into its smaller neighbour until every bin holds ``k`` or more."""
    edges, counts = list(edges), list(counts)
    while len(counts) > 1 and min(counts) < k:
        j = int(np.argmin(counts))
        if j == 0:
            nb = 1
        elif j == len(counts) - 1:
            nb = j - 1
        else:
            nb = j - 1 if counts[j - 1] <= counts[j + 1] else j + 1
        lo = min(j, nb)
        counts[lo] += counts[lo + 1]
        del counts[lo + 1]
        del edges[lo]  # the cut point between bins lo and lo + 1
    return edges, counts


def _merge_levels(groups: list[list[str]], counts: list[int], k: int) -> tuple[list[list[str]], list[int]]:
    groups, counts = [list(g) for g in groups], list(counts)
    while len(counts) > 1 and min(counts) < k:
        order = np.argsort(counts, kind="stable")
        a, b = int(order[0]), int(order[1])
        groups[b] = sorted(groups[a] + groups[b])
        counts[b] += counts[a]
        del groups[a], counts[a]
    return groups, counts


def input_reference(
    name: str,
    column: pd.Series,
    *,
    policy: DisclosurePolicy,
    training_range: tuple[float, float] | None = None,
) -> InputReference:
    """The binned, disclosure-controlled distribution of one column (see the module docstring)."""
    k = policy.min_cell if policy.enabled else 1
    present = column.notna().to_numpy()
    n, missing = len(column), int((~present).sum())
    bins: list[ReferenceBin]
    if is_categorical(column):
        s = column[present].astype(str)
        levels = sorted(s.unique())
        groups, counts = _merge_levels([[lv] for lv in levels], [int((s == lv).sum()) for lv in levels], k)
        bins = [ReferenceBin(levels=g, n=c) for g, c in zip(groups, counts, strict=True)]
        kind: Literal["number", "category"] = "category"
        outside = 0
    else:
        values = column[present].astype(float).to_numpy()
        edges, counts = _merge_numeric(bin_edges(values), _numeric_counts(values, bin_edges(values)), k)
        bounds = [None, *edges, None]
        bins = [ReferenceBin(lower=bounds[j], upper=bounds[j + 1], n=c) for j, c in enumerate(counts)]
        kind = "number"
        outside = 0
        if training_range is not None:
            outside = int(((values < training_range[0]) | (values > training_range[1])).sum())
    if sum(b.n for b in bins) < k or not bins or min(b.n for b in bins) < k:
        bins = []  # too few persons with a value for any bin: no histogram is released
    small_missing = policy.is_small(missing)
    if small_missing:  # complementary protection: the bins must not add up to n - missing
        bins = [b.model_copy(update={"n": max(k, k * round(b.n / k))}) for b in bins]
    else:
        bins = [b.model_copy(update={"n": policy.count(b.n) or b.n}) for b in bins]
    return InputReference(
        name=name,
        kind=kind,
        n=n,
        missing=policy.count(missing),
        imputed=policy.count(missing),
        out_of_range=policy.count(outside),
        rounded=small_missing,
        bins=bins,
    )


def reference_distributions(
    x: pd.DataFrame,
    risk: np.ndarray,
    *,
    policy: DisclosurePolicy,
    training_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, Any]:
    """The reference of every column of ``x`` and of ``risk`` (results.json's ``reference``).

    >>> ref = reference_distributions(frame[features], model.predict_risk(frame[features]),
    ...                               policy=DisclosurePolicy())  # doctest: +SKIP
    """
    ranges = dict(training_ranges or {})
    inputs = [
        input_reference(str(c), x[c], policy=policy, training_range=ranges.get(str(c))) for c in x.columns
    ]
    risk_ref = input_reference("risk", pd.Series(np.asarray(risk, float)), policy=policy)
    ref = ReferenceDistributions(
        min_cell=policy.min_cell if policy.enabled else 1, n=len(x), inputs=inputs, risk=risk_ref
    )
    return ref.model_dump(mode="json")


def bin_index(ref: InputReference, value: Any) -> int | None:
    """The bin of ``value`` in ``ref`` (None for a missing value or a level the reference never saw)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if ref.kind == "category":
        s = str(value)
        return next((j for j, b in enumerate(ref.bins) if b.levels and s in b.levels), None)
    x = float(value)
    for j, b in enumerate(ref.bins):
        if (b.lower is None or x > b.lower) and (b.upper is None or x <= b.upper):
            return j
    return None
