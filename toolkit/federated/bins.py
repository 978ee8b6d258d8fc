"""Shared bins for site histograms: every released bin holds at least ``m`` of what it counts.

A site releases counts of events (per group) and of values (per group) only on bins.  In
*binned* mode (the default) the bins are built so that each bin holds, for every group that
has any, at least ``m`` events (time axes) or values (value axes) at every site:

1. The coordinator fixes a base grid (multiples of ``base``; a value ``x`` falls in base bin
   ``ceil(x / base)``).
2. Each site walks its base bins in order and closes a bin as soon as every group holds at
   least ``m`` (a short tail is merged backwards).  It sends only where its bins end.
3. The rule is monotone: a bin that contains a valid bin is valid.  So the coordinator can
   build shared bins from the sites' cut points alone: each shared bin ends at the first
   point where it contains a whole bin of every site that still has data.

Statistics computed on the shared bins are exact for the data with values moved to their
bin's representative (the right edge for times, the pooled mean for values).  Censorings are
not constrained: as in any at-risk table, the number at risk falls by events and censorings
between bin edges.  In *exact* mode, which a site must allow explicitly, the bins are the
distinct values themselves and the statistics equal the pooled ones exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from toolkit.errors import SiteRefusal


def base_index(values: np.ndarray, base: float) -> np.ndarray:
    """The base bin of each value: ``ceil(x / base)`` (bins are ``((j-1) * base, j * base]``)."""
    return np.ceil(np.asarray(values, float) / base).astype(np.int64)


def _valid(acc: np.ndarray, totals: np.ndarray, m: int) -> bool:
    return bool(np.all((acc >= m) | (totals == 0)))


@dataclass(frozen=True)
class CutProposal:
    """Where a site's bins end (base-bin indices, ascending; the last is its last data bin)."""

    cuts: tuple[int, ...]

    def to_wire(self) -> dict[str, object]:
        return {"cuts": np.asarray(self.cuts, np.int64)}

    @staticmethod
    def from_wire(d: dict[str, object]) -> CutProposal:
        cuts = d["cuts"]
        if not isinstance(cuts, np.ndarray) or cuts.ndim != 1 or cuts.dtype.kind not in "iu":
            raise ValueError("malformed cut proposal")
        if len(cuts) > 1 and np.any(np.diff(cuts) <= 0):
            raise ValueError("cut points are not increasing")
        return CutProposal(tuple(int(c) for c in cuts))


def propose_cuts(
    index: np.ndarray,
    cells: np.ndarray,
    n_cells: int,
    m: int,
    *,
    what: str,
    counted: np.ndarray | None = None,
) -> CutProposal:
    """Greedy bins over a site's base bins: each holds >= m counted rows of every cell that has any.

    ``index`` holds each row's base bin, ``cells`` its cell number (0..n_cells-1) and
    ``counted`` whether the row counts towards the rule (events on a time axis; default all).
    The last bin ends at the last counted row.  Raises :class:`SiteRefusal` when a cell holds
    between 1 and m - 1 counted rows in total.
    """
    flags = np.ones(len(index), bool) if counted is None else np.asarray(counted, bool)
    if not flags.any():
        return CutProposal(())
    ub, inv = np.unique(np.asarray(index)[flags], return_inverse=True)
    counts = np.zeros((len(ub), n_cells))
    np.add.at(counts, (inv, np.asarray(cells)[flags]), 1.0)
    totals = counts.sum(axis=0)
    if np.any((totals > 0) & (totals < m)):
        raise SiteRefusal(f"{what}: a group holds between 1 and {m - 1} events or values at this site")
    closed: list[int] = []
    acc = np.zeros(n_cells)
    for i, b in enumerate(ub):
        acc = acc + counts[i]
        if _valid(acc, totals, m):
            closed.append(int(b))
            acc = np.zeros(n_cells)
    if closed[-1] != int(ub[-1]):  # a tail that is not a valid bin joins the last one
        closed[-1] = int(ub[-1])
    return CutProposal(tuple(closed))


def shared_cuts(proposals: Sequence[CutProposal]) -> np.ndarray:
    """Shared bins: each ends once it contains a whole bin of every site that still has data.

    A shared bin never ends strictly inside a site's last bin (that would leave a piece too
    small to stand alone), so every shared bin holds, for every site, either nothing counted or
    at least one whole bin of that site.
    """
    sites = [np.asarray(p.cuts, np.int64) for p in proposals if p.cuts]
    out: list[int] = []
    start: int | None = None  # the shared bin being built starts after this cut
    while True:
        ends = []
        for c in sites:
            if start is not None and c[-1] <= start:
                continue  # no counted rows left at this site
            i = 0 if start is None else int(np.searchsorted(c, start, side="left")) + 1
            ends.append(int(c[min(i, len(c) - 1)]))
        if not ends:
            break
        nxt = max(ends)
        moved = True
        while moved:  # never end inside a site's last bin
            moved = False
            for c in sites:
                lo = int(c[-2]) if len(c) > 1 else None
                if (lo is None or lo < nxt) and nxt < int(c[-1]):
                    nxt, moved = int(c[-1]), True
        out.append(nxt)
        start = nxt
    return np.asarray(out, np.int64)


def assign(index: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    """Position of each row's shared bin (the first cut >= its base bin).

    Rows after the last shared cut (censorings after every site's last event, values after the
    last counted value) join the last bin.
    """
    if len(cuts) == 0:
        raise SiteRefusal("there are no shared bins to report on")
    return np.minimum(np.searchsorted(cuts, index, side="left"), len(cuts) - 1)
