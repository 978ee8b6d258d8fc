"""One protocol per analysis type, written as a generator: it yields the operation every site
should run this round, receives ``{site: reply}``, and finally returns the analysis' entry for
results.json (the same schema as a pooled run) and its plots.

The driver (:mod:`.coordinator`) runs all protocols of a study side by side, so one round
carries one operation per analysis still in progress: a study with a Cox model, a logistic
model and a Kaplan-Meier analysis needs about as many rounds as its slowest Newton-Raphson.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.describe import Table1Rows, table1
from toolkit.analysis.design import is_categorical
from toolkit.analysis.logistic import INTERCEPT, logistic_result, null_loglik
from toolkit.analysis.plots import forest_plot
from toolkit.analysis.survival.cox import CoxResult, CoxStats, cox_terms, newton_steps
from toolkit.disclosure import DisclosurePolicy
from toolkit.disclosure.audit import LinearTable
from toolkit.disclosure.joint import (
    ALL,
    PRESENT,
    Crosstab,
    RunCells,
    add_crosstab,
    protect_run,
    resolve_unknown,
)
from toolkit.disclosure.joint import MISSING as JOINT_MISSING
from toolkit.errors import AnalysisError, FederatedError
from toolkit.federated.assemble import expand, pooled_cox_stats
from toolkit.federated.bins import CutProposal, shared_cuts
from toolkit.federated.limits import RunOptions
from toolkit.federated.site import MISSING
from toolkit.study.kinds.base import RunContext

Replies = dict[str, dict[str, Any]]
AnalysisOutput = tuple[dict[str, Any], dict[str, bytes]]
Protocol = Generator[dict[str, Any], Replies, AnalysisOutput]

NOT_FEDERATED_CONCORDANCE = (
    "concordance is not computed in a federated run (it compares individuals across sites)"
)
NOT_FEDERATED_PH = "the proportional-hazards test is not computed in a federated run"


@dataclass
class Context:
    """What the coordinator learned in the first round, pooled over sites."""

    options: RunOptions
    policy: DisclosurePolicy
    sites: list[str]
    n: int
    dtypes: dict[str, str]
    levels: dict[str, list[str]]
    few_values: dict[str, list[float] | None]
    moments: dict[str, tuple[float, float, float] | None]
    time_bins: dict[str, list[float]] = field(default_factory=dict)  # binned mode: shared bin edges
    study: RunContext = field(default_factory=RunContext)  # the study's dictionary and horizon

    def categorical(self, column: str) -> bool:
        return is_categorical(pd.Series([], dtype=self.dtypes[column]))


def garbage(site: str, what: str) -> FederatedError:
    return FederatedError(f"site {site} answered garbage ({what})", site=site)


def _arr(site: str, reply: dict[str, Any], key: str, ndim: int, *, kind: str = "f") -> np.ndarray:
    v = reply.get(key)
    if not isinstance(v, np.ndarray) or v.ndim != ndim or (kind == "f" and v.dtype.kind not in "fi"):
        raise garbage(site, f"{key!r} is not a {ndim}-d array")
    if v.dtype.kind == "f" and not np.all(np.isfinite(v)):
        raise garbage(site, f"{key!r} has non-finite values")
    return v


def _int(site: str, reply: dict[str, Any], key: str) -> int:
    v = reply.get(key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise garbage(site, f"{key!r} is not an integer")
    return v


def _proposals(replies: Replies) -> list[CutProposal]:
    out = []
    for site, r in replies.items():
        try:
            out.append(CutProposal.from_wire(r))
        except (KeyError, ValueError, TypeError):
            raise garbage(site, "malformed cut proposal") from None
    return out


def _known_sum(values: Sequence[int]) -> int | None:
    return None if any(v == MISSING for v in values) else int(sum(values))


def _dropped_warning(dropped: list[int], text: str, k: int) -> list[str]:
    total = _known_sum(dropped)
    if total is None:
        return [
            f"rows with missing values were left out ({text}); the number is withheld (under {k} at a site)"
        ]
    return [f"{total} {text}"] if total else []


# --- Kaplan-Meier, log-rank, RMST, cumulative incidence -----------------------------------
def event_counts_protocol(ctx: Context, a: Any) -> Protocol:
    """Analyses that depend on the data only through counts per group, time and event code.

    Sites send those counts; the coordinator lays them out as pseudo-rows and runs the pooled
    study step itself (:func:`toolkit.study.kinds.run_analysis`), so the entry and its plots are
    exactly what a pooled run would produce from the same counts.
    """
    from toolkit.study.kinds import run_analysis

    cells = [c for c in (getattr(a, "by", None), getattr(a, "strata", None)) if c]
    op = {
        "time": "time",
        "event": "event",
        "cells": cells,
        "dtypes": {c: ctx.dtypes[c] for c in cells},
        "what": f"{a.type} {a.name}",
        "base": ctx.options.time_base_days,
    }
    cuts = None
    if not ctx.options.exact:
        cuts = shared_cuts(_proposals((yield {"op": "surv_cuts", **op})))
        ctx.time_bins[a.name] = [float(c) * ctx.options.time_base_days for c in cuts]
    replies = yield {"op": "surv_hist", **op, "cuts": cuts}
    table: dict[tuple[tuple[str | None, ...], float, int], int] = {}
    for site, r in replies.items():
        times, codes = _arr(site, r, "time", 1), _arr(site, r, "codes", 1, kind="i")
        counts = _arr(site, r, "counts", 3, kind="i")
        labels = r.get("cells")
        if not isinstance(labels, list) or counts.shape != (len(labels), len(codes), len(times)):
            raise garbage(site, "histogram shapes do not match")
        if (counts < 0).any():
            raise garbage(site, "negative counts")
        for i, j, k in zip(*np.nonzero(counts), strict=True):
            key = (tuple(labels[i]), float(times[k]), int(codes[j]))
            table[key] = table.get(key, 0) + int(counts[i, j, k])
    keys = sorted(table, key=lambda x: (x[1], x[2], tuple("" if v is None else v for v in x[0])))
    cols: dict[str, Any] = {
        "time": np.array([k[1] for k in keys], float),
        "event": np.array([k[2] for k in keys], int),
    }
    for i, c in enumerate(cells):
        cols[c] = np.array([k[0][i] for k in keys], dtype=object)
    pseudo = expand(cols, [table[k] for k in keys])
    entry, plots = run_analysis(a, pseudo, ctx.policy, ctx.study)
    return entry, plots


# --- regression helpers ------------------------------------------------------------------
def _design_names(ctx: Context, covariates: Sequence[str]) -> tuple[list[str], dict[str, list[str]]]:
    names: list[str] = []
    levels: dict[str, list[str]] = {}
    for c in covariates:
        if ctx.categorical(c):
            lv = ctx.levels.get(c, [])
            if len(lv) < 2:
                raise AnalysisError(f"covariate {c!r} has fewer than two levels; it is constant")
            levels[c] = lv
            names += [f"{c}={level}" for level in lv[1:]]
        else:
            names.append(c)
    return names, levels


def _summaries(replies: Replies, p: int) -> tuple[int, int, np.ndarray, np.ndarray, list[int]]:
    n = events = 0
    sx, sxx = np.zeros(p), np.zeros((p, p))
    dropped = []
    for site, r in replies.items():
        n += _int(site, r, "n")
        events += _int(site, r, "events")
        x, xx = _arr(site, r, "sum_x", 1), _arr(site, r, "sum_xx", 2)
        if x.shape != (p,) or xx.shape != (p, p):
            raise garbage(site, "sums have the wrong size")
        sx, sxx = sx + x, sxx + xx
        dropped.append(_int(site, r, "dropped"))
    return n, events, sx, sxx, dropped


def _complete_case_only(ctx: Context, a: Any) -> None:
    if ctx.study.missing.method != "complete_case":
        raise FederatedError(
            f"analysis {a.name!r}: multiple imputation is not available in a federated run (each "
            "site would impute from its own rows only); set missing: {method: complete_case}"
        )


def _missing_data(ctx: Context, covariates: Sequence[str], replies: Replies) -> dict[str, Any]:
    """The complete-case statement a pooled fit carries (``missing_data``: the cohort, persons
    lacking each covariate and any), from the sites' counts (None where a site withheld one)."""
    lacking: list[list[int]] = [[] for _ in covariates]
    removed = []
    for site, r in replies.items():
        m = _arr(site, r, "missing", 1, kind="i")
        if m.shape != (len(covariates),):
            raise garbage(site, "'missing' has the wrong size")
        for j, c in enumerate(m):
            lacking[j].append(int(c))
        removed.append(_int(site, r, "lacking"))
    variables = [
        {"variable": c, "missing": _known_sum(m)}
        for c, m in zip(covariates, lacking, strict=True)
        if _known_sum(m) != 0
    ]
    return {"method": "complete_case", "n": ctx.n, "variables": variables, "removed": _known_sum(removed)}


def _check_design(
    what: str, names: Sequence[str], n: int, sx: np.ndarray, sxx: np.ndarray, *, intercept: bool
) -> None:
    """Constant and collinear covariates, judged from pooled sums (as the pooled fits do)."""
    mean = sx / n
    scatter = sxx - n * np.outer(mean, mean)
    var = np.diag(scatter) / n
    off = 1 if intercept else 0
    const = [nm for j, nm in enumerate(names) if j >= off and var[j] <= 1e-12 * (1.0 + mean[j] ** 2)]
    if const:
        raise AnalysisError(f"{what}: covariate(s) {const} are constant; remove them")
    m = sxx if intercept else scatter
    if np.linalg.matrix_rank(m, hermitian=True) < len(names):
        label = list(names[off:])
        raise AnalysisError(
            f"{what}: covariates {label} are collinear (the design matrix is rank deficient)"
            if intercept
            else f"Cox: covariates {label} are collinear (the design matrix is rank deficient)"
        )


# --- Cox --------------------------------------------------------------------------------
def cox_protocol(ctx: Context, a: Any) -> Protocol:
    if a.robust or a.cluster:
        raise FederatedError(
            f"analysis {a.name!r}: robust or cluster variance is not available in a federated run"
        )
    cause = int(getattr(a, "cause", 1))
    names, levels = _design_names(ctx, a.covariates)
    p = len(names)
    op = {
        "name": a.name,
        "time": "time",
        "event": "event",
        "cause": cause,
        "covariates": list(a.covariates),
        "levels": levels,
        "strata": a.strata,
        "base": ctx.options.time_base_days,
    }
    _complete_case_only(ctx, a)
    summaries = yield {"op": "cox_summary", **op}
    n, events, sx, _sxx, dropped = _summaries(summaries, p)
    if events == 0:
        raise AnalysisError(
            f"Cox: there are no events (code {cause} in column 'event'); a hazard ratio cannot be estimated"
        )
    _check_design("Cox", names, n, sx, _sxx, intercept=False)
    center = sx / n
    cuts = None
    if not ctx.options.exact:
        cuts = shared_cuts(_proposals((yield {"op": "cox_cuts", **op})))
        ctx.time_bins[a.name] = [float(c) * ctx.options.time_base_days for c in cuts]
    steps = newton_steps(p)
    beta = next(steps)
    null: CoxStats | None = None
    while True:
        replies = yield {
            "op": "cox_stats",
            **op,
            "beta": beta,
            "center": center,
            "ties": a.ties,
            "cuts": cuts,
        }
        pieces = [_checked_cox_reply(site, r, p) for site, r in replies.items()]
        st = pooled_cox_stats(pieces, p, a.ties)
        if null is None:
            null = st
        try:
            beta = steps.send(st)
        except StopIteration as stop:
            beta, final, iters = stop.value
            break
    assert null is not None
    result = _cox_result(ctx, a, names, beta, final, null, iters, n=n, events=events, dropped=dropped)
    labels = {t.term: ctx.study.dictionary.term(t.term) for t in result.terms}
    entry = {**result.to_dict(), "missing_data": _missing_data(ctx, a.covariates, summaries)}
    return entry, {f"forest_{a.name}": forest_plot(result, labels=labels)}


def _checked_cox_reply(site: str, r: dict[str, Any], p: int) -> dict[str, Any]:
    """A site's per-stratum Cox sums, refused as garbage unless every array has its shape."""
    if not isinstance(r.get("strata"), list):
        raise garbage(site, "no strata")
    for s in r["strata"]:
        t = _arr(site, s, "time", 1)
        for key, shape in (
            ("a0", ()),
            ("a1", (p,)),
            ("a2", (p * (p + 1) // 2,)),
            ("d", ()),
            ("e0", ()),
            ("e1", (p,)),
            ("e2", (p * (p + 1) // 2,)),
        ):
            v = _arr(site, s, key, 1 + len(shape))
            if v.shape != (len(t), *shape):
                raise garbage(site, f"{key!r} has the wrong shape")
        if _arr(site, s, "ex", 1).shape != (p,) or not isinstance(s.get("eeta"), float | int):
            raise garbage(site, "event sums have the wrong shape")
    return r


def _cox_result(
    ctx: Context,
    a: Any,
    names: list[str],
    beta: np.ndarray,
    final: CoxStats,
    null: CoxStats,
    iters: int,
    *,
    n: int,
    events: int,
    dropped: list[int],
) -> CoxResult:
    """The pooled fit as a :class:`CoxResult`, with what a federated fit cannot give stated."""
    cov = np.linalg.inv(final.information)
    terms = cox_terms(names, beta, np.sqrt(np.diag(cov)))
    warnings = _dropped_warning(
        dropped, "rows with missing values were left out (complete cases)", ctx.policy.min_cell
    )
    if np.any(np.abs(beta) > 20):
        warnings.append("very large coefficients: possible (quasi-)complete separation")
    warnings += [NOT_FEDERATED_CONCORDANCE, NOT_FEDERATED_PH]
    return CoxResult(
        terms=tuple(terms),
        ties=a.ties,
        n=n,
        events=events,
        loglik=final.loglik,
        loglik_null=null.loglik,
        concordance=float("nan"),
        iterations=iters,
        strata=a.strata,
        robust=False,
        covariance=cov,
        warnings=tuple(warnings),
    )


# --- logistic regression ------------------------------------------------------------------
def logistic_protocol(ctx: Context, a: Any) -> Protocol:
    names, levels = _design_names(ctx, a.covariates)
    names = [INTERCEPT, *names]
    p = len(names)
    op = {"name": a.name, "outcome": a.outcome, "covariates": list(a.covariates), "levels": levels}
    _complete_case_only(ctx, a)
    summaries = yield {"op": "logistic_summary", **op}
    n, events, sx, sxx, dropped = _summaries(summaries, p)
    if events in (0, n):
        raise AnalysisError(f"logistic regression: outcome {a.outcome!r} has only one value")
    _check_design("logistic regression", names, n, sx, sxx, intercept=True)
    steps = newton_steps(p, what="logistic regression")
    beta = next(steps)
    while True:
        replies = yield {"op": "logistic_stats", **op, "beta": beta}
        ll, score, info = 0.0, np.zeros(p), np.zeros((p, p))
        for site, r in replies.items():
            if not isinstance(r.get("loglik"), float | int):
                raise garbage(site, "no log-likelihood")
            sc, inf = _arr(site, r, "score", 1), _arr(site, r, "info", 2)
            if sc.shape != (p,) or inf.shape != (p, p):
                raise garbage(site, "score or information has the wrong size")
            ll, score, info = ll + float(r["loglik"]), score + sc, info + inf
        try:
            beta = steps.send(CoxStats(ll, score, info))
        except StopIteration as stop:
            beta, final, iters = stop.value
            break
    warnings = _dropped_warning(
        dropped, "rows with missing values were left out (complete cases)", ctx.policy.min_cell
    )
    res = logistic_result(
        a.outcome,
        names,
        beta,
        final,
        null_loglik(n, events),
        n=n,
        events=events,
        iterations=iters,
        warnings=warnings,
    )
    return {**res.to_dict(), "missing_data": _missing_data(ctx, a.covariates, summaries)}, {}


# --- Table 1 ----------------------------------------------------------------------------
WITHHELD = "withheld"


def _t1_kinds(ctx: Context, a: Any) -> dict[str, str]:
    kinds: dict[str, str] = {}
    for v in a.variables:
        if ctx.categorical(v):
            kinds[v] = "cat"
        else:
            few = ctx.few_values.get(v)
            kinds[v] = "cat" if few is not None and len(few) <= 2 else "num"
    return kinds


def table1_protocol(ctx: Context, a: Any) -> Protocol:
    """Table 1 from every site's counts, protected twice by the rules of a pooled run: each site
    protects its replies together (toolkit.federated.site), and the pooled counts are protected
    again, as one linear system, with the cells a site withheld unknown (withheld, and protected
    as if they could be small)."""
    by = a.by
    kinds = _t1_kinds(ctx, a)
    dt = {by: ctx.dtypes[by]} if by else {}
    table = {"by": by, "variables": [[v, kinds[v]] for v in a.variables], "dtypes": {**ctx.dtypes}}
    bases: dict[str, float] = {}
    cuts: dict[str, np.ndarray | None] = {v: None for v in a.variables}
    num = [v for v in a.variables if kinds[v] == "num"]
    if not ctx.options.exact and num:
        for v in num:
            m = ctx.moments.get(v)
            sd = np.sqrt(max(m[2] / m[0] - (m[1] / m[0]) ** 2, 0.0)) if m else 0.0
            bases[v] = float(sd * ctx.options.value_base_sd) if sd > 0 else 1.0
        cut_ops = {
            v: {"op": "value_cuts", "column": v, "by": by, "base": bases[v], "table": table} for v in num
        }
        props = yield {"op": "multi", "ops": cut_ops}
        for v in num:
            cuts[v] = shared_cuts(_proposals({s: r[v] for s, r in props.items()}))
    ops: dict[str, Any] = {"_sizes": {"op": "t1_sizes", "by": by, "dtypes": dt, "table": table}}
    for v in a.variables:
        base = {"column": v, "by": by, "dtypes": dt, "table": table}
        if kinds[v] == "cat":
            ops[v] = {"op": "cat_counts", "dtype": ctx.dtypes[v], **base}
        else:
            ops[v] = {"op": "value_hist", "cuts": cuts[v], "base": bases.get(v, 1.0), **base}
    replies = yield {"op": "multi", "ops": ops}
    return _t1_entry(ctx, a, kinds, replies, cuts), {}


def _t1_entry(
    ctx: Context, a: Any, kinds: dict[str, str], replies: Replies, cuts: dict[str, np.ndarray | None]
) -> dict[str, Any]:
    by = a.by
    labels, size = _group_sizes(replies)
    blv = sorted(x for x in labels if x is not None)
    groups = ["Overall"] + ([f"{by}={lv}" for lv in blv] if by else [])
    merged = _T1Merge(ctx, by, {lab: _known_sum(size.get(lab, [])) for lab in labels})
    for v in a.variables:
        per_site = {site: r[v] for site, r in replies.items()}
        if kinds[v] == "cat":
            merged.categorical(v, per_site)
        else:
            merged.numeric(v, per_site)
    status = merged.protect()
    counts = merged.describe_counts(groups)
    t1 = Table1Rows(ctx.policy, status, counts)
    rows: list[dict[str, Any]] = [t1.count_row("n", None, ("n",), groups)]
    for v in a.variables:
        if kinds[v] == "cat":
            rows += t1.categorical_rows(v, groups, two=len(groups) == 3, tests=False)
        else:
            per_site = {site: r[v] for site, r in replies.items()}
            num = _num_rows(v, per_site, groups, {g: _members(g, labels) for g in groups}, by, ctx,
                            exact=cuts[v] is None)  # fmt: skip
            rows += [t1.missing_marks(r, v, groups) for r in num]
    entry: dict[str, Any] = {"type": "table1", "by": by, "groups": groups, "rows": rows}
    note = (
        ctx.policy.footnote(status.get(k, "published") for k in counts.values) if ctx.policy.enabled else None
    )
    if note:
        entry["disclosure_note"] = note
    return entry


def _group_sizes(replies: Replies) -> tuple[set[str | None], dict[str | None, list[int]]]:
    """The group labels the sites saw, and each group's size per site."""
    labels: set[str | None] = set()
    size: dict[str | None, list[int]] = {}
    for site, r in replies.items():
        sz = r["_sizes"]
        cells = sz.get("cells")
        arr = _arr(site, sz, "size", 1, kind="i")
        if not isinstance(cells, list) or len(cells) != len(arr):
            raise garbage(site, "group sizes do not match their groups")
        for lab, n in zip(cells, arr, strict=True):
            labels.add(lab)
            size.setdefault(lab, []).append(int(n))
    return labels, size


def _members(group: str, labels: set[str | None]) -> list[Any]:
    return list(labels) if group == "Overall" else [group.split("=", 1)[1]]


class _T1Merge:
    """The pooled counts of a Table 1 (None where a site withheld its part), as cells of the
    disclosure system (:mod:`toolkit.disclosure.joint`), and their statuses after protection."""

    def __init__(self, ctx: Context, by: str | None, sizes: dict[str | None, int | None]) -> None:
        self.ctx, self.by = ctx, by
        self.sizes = {self._b(lab): n for lab, n in sizes.items()} if by else {ALL: ctx.n}
        self.cells = RunCells()
        self.cells.cell(("n",), ctx.n, shown=True)
        self.names: dict[str, list[str]] = {}

    @staticmethod
    def _b(label: str | None) -> str:
        return JOINT_MISSING if label is None else str(label)

    def _add(self, v: str, numeric: bool, counts: dict[tuple[str, str], int | None]) -> None:
        blevels = list(self.sizes)
        full = {(lv, b): counts.get((lv, b), 0) for lv, _ in counts for b in blevels}
        add_crosstab(self.cells, Crosstab(v, self.by, numeric=numeric), full, self.sizes)

    def categorical(self, v: str, per_site: Replies) -> None:
        pooled: dict[tuple[str, str], list[int]] = {}
        for site, r in per_site.items():
            c = _arr(site, r, "counts", 2, kind="i")
            if not isinstance(r.get("cells"), list) or c.shape != (
                len(r["cells"]),
                len(r.get("levels", [])) + 1,
            ):
                raise garbage(site, f"counts of {v!r} have the wrong shape")
            for i, lab in enumerate(r["cells"]):
                b = self._b(lab) if self.by else ALL
                for j, lv in enumerate([*r["levels"], JOINT_MISSING]):
                    pooled.setdefault((str(lv), b), []).append(int(c[i, j]))
        levels = [*sorted({lv for lv, _ in pooled} - {JOINT_MISSING}), JOINT_MISSING]
        counts = {(lv, b): _known_sum(pooled.get((lv, b), [])) for lv in levels for b in self.sizes}
        self._add(v, False, counts)

    def numeric(self, v: str, per_site: Replies) -> None:
        missing: dict[str, list[int]] = {}
        present: dict[str, list[int]] = {}
        for site, r in per_site.items():
            hist = _arr(site, r, "counts", 2, kind="i")
            miss = _arr(site, r, "missing", 1, kind="i")
            wh = r.get("withheld")
            if (
                not isinstance(r.get("cells"), list)
                or not isinstance(wh, np.ndarray)
                or hist.shape[0] != len(r["cells"])
            ):
                raise garbage(site, f"histogram of {v!r} has the wrong shape")
            for i, lab in enumerate(r["cells"]):
                b = self._b(lab) if self.by else ALL
                gone = bool(wh[i])
                missing.setdefault(b, []).append(MISSING if gone else int(miss[i]))
                present.setdefault(b, []).append(MISSING if gone else int(hist[i].sum()))
        counts: dict[tuple[str, str], int | None] = {}
        for b in self.sizes:
            counts[(PRESENT, b)] = _known_sum(present.get(b, []))
            counts[(JOINT_MISSING, b)] = _known_sum(missing.get(b, []))
        self._add(v, True, counts)

    def protect(self) -> dict[Hashable, str]:
        """Statuses under Table 1's keys (``("n", group)``, ``(variable, level, group)``)."""
        resolve_unknown(self.cells)
        if not self.ctx.policy.enabled:  # the sites' own withheld cells stay withheld
            decided = {
                k: "complementary" if k in self.cells.unknown else "published"
                for k in self.cells.table.values
            }
        else:
            decided = dict(protect_run(self.cells, min_cell=self.ctx.policy.min_cell).status)
        self.decided = decided
        return {
            k: ("published" if decided[c] == "unpublished" else decided[c]) for k, c in self._keys().items()
        }

    def _keys(self) -> dict[Hashable, Hashable]:
        """Table 1's key -> the disclosure system's cell."""
        out: dict[Hashable, Hashable] = {("n", "Overall"): ("n",)}
        for b in self.sizes:
            if self.by and b != JOINT_MISSING:
                out[("n", f"{self.by}={b}")] = ("m", self.by, b)
        for key in self.cells.table.values:
            if key[0] == "m" and key[1] != self.by and key[2] != PRESENT:  # type: ignore[index]
                out[(key[1], key[2], "Overall")] = key  # type: ignore[index]
            elif key[0] == "x" and self.by:  # type: ignore[index]
                (v, lv), (b_var, b) = sorted(key[1:], key=lambda p: p[0] == self.by)  # type: ignore[index]
                if b != JOINT_MISSING and lv != PRESENT and b_var == self.by:
                    out[(v, lv, f"{self.by}={b}")] = key
        return out

    def describe_counts(self, groups: list[str]) -> LinearTable:
        """The pooled counts under Table 1's keys (0 where unknown: those cells are withheld)."""
        values = self.cells.table.values
        return LinearTable({k: int(values[c]) for k, c in self._keys().items()})


def _num_rows(
    v: str,
    per_site: Replies,
    groups: list[str],
    member: dict[str, list[Any]],
    by: str | None,
    ctx: Context,
    *,
    exact: bool,
) -> list[dict[str, Any]]:
    """Numeric rows: Regent's Table 1 on pseudo-rows rebuilt from the pooled value counts."""
    withheld_labels: set[Any] = set()
    vals: dict[tuple[Any, float], list[float]] = {}  # (group label, value or bin) -> [count, sum]
    missing: dict[Any, int] = {}
    for site, r in per_site.items():
        cells = r.get("cells")
        counts = _arr(site, r, "counts", 2, kind="i")
        wh = r.get("withheld")
        miss = _arr(site, r, "missing", 1, kind="i")
        if not isinstance(cells, list) or not isinstance(wh, np.ndarray) or counts.shape[0] != len(cells):
            raise garbage(site, f"histogram of {v!r} has the wrong shape")
        axis = _arr(site, r, "values", 1) if exact else None
        sums = None if exact else _arr(site, r, "sums", 2)
        for i, lab in enumerate(cells):
            if bool(wh[i]):
                withheld_labels.add(lab)
                continue
            missing[lab] = missing.get(lab, 0) + int(miss[i])
            for j in np.nonzero(counts[i])[0]:
                acc = vals.setdefault((lab, float(axis[j]) if axis is not None else float(j)), [0.0, 0.0])
                acc[0] += counts[i, j]
                acc[1] += float(axis[j]) * counts[i, j] if axis is not None else float(sums[i, j])  # type: ignore[index]
    lab_col: list[Any] = []
    val_col: list[float] = []
    reps: list[int] = []
    for (lab, point), (n, s) in sorted(vals.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        lab_col.append(lab)
        val_col.append(point if exact else s / n)
        reps.append(int(n))
    for lab, n in missing.items():
        if n:
            lab_col.append(lab)
            val_col.append(np.nan)
            reps.append(n)
    if not val_col:  # every group withheld at some site: nothing to summarise
        withheld_row = {g: WITHHELD for g in groups}
        return [{"label": f"{v}, mean (SD)", "variable": v, "cells": withheld_row, "smd": None,
                 "missing": dict.fromkeys(groups)}]  # fmt: skip
    byc = by or "_group"
    pseudo = expand({byc: np.asarray(lab_col, object), v: np.asarray(val_col, float)}, reps)
    t = table1(pseudo, [v], by=by, policy=ctx.policy)
    rows = [dict(r) for r in t.rows[1:]]
    # a group withheld at every site has no pseudo-rows at all
    bad = {g for g in groups if any(lab in withheld_labels for lab in member[g])} | (
        set(groups) - set(t.groups)
    )
    for r in rows:
        r["cells"] = {g: r["cells"].get(g, WITHHELD) for g in groups}  # type: ignore[attr-defined]
        if "missing" in r:
            r["missing"] = {g: r["missing"].get(g) for g in groups}  # type: ignore[attr-defined]
    if bad:
        for r in rows:
            r["cells"] = {g: WITHHELD if g in bad else c for g, c in r["cells"].items()}  # type: ignore[attr-defined]
            if "missing" in r:
                r["missing"] = {g: None if g in bad else c for g, c in r["missing"].items()}  # type: ignore[attr-defined]
            if len(groups) == 3 and (groups[1] in bad or groups[2] in bad):
                r["smd"] = None
    return rows
