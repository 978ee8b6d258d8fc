"""One protocol per analysis type, written as a generator: it yields the operation every site
should run this round, receives ``{site: reply}``, and finally returns the analysis' entry for
results.json (the same schema as a pooled run) and its plots.

The driver (:mod:`.coordinator`) runs all protocols of a study side by side, so one round
carries one operation per analysis still in progress: a study with a Cox model, a logistic
model and a Kaplan-Meier analysis needs about as many rounds as its slowest Newton-Raphson.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.describe import _smd_binary, table1
from toolkit.analysis.design import is_categorical
from toolkit.analysis.logistic import INTERCEPT, logistic_result, null_loglik
from toolkit.analysis.plots import forest_plot
from toolkit.analysis.survival.cox import CoxResult, CoxStats, cox_terms, newton_steps
from toolkit.disclosure import DisclosurePolicy
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
    n, events, sx, _sxx, dropped = _summaries((yield {"op": "cox_summary", **op}), p)
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
    return result.to_dict(), {f"forest_{a.name}": forest_plot(result, labels=labels)}


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
    n, events, sx, sxx, dropped = _summaries((yield {"op": "logistic_summary", **op}), p)
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
    return res.to_dict(), {}


# --- Table 1 ----------------------------------------------------------------------------
WITHHELD = "withheld"


def table1_protocol(ctx: Context, a: Any) -> Protocol:
    by = a.by
    kinds: dict[str, str] = {}
    for v in a.variables:
        if ctx.categorical(v):
            kinds[v] = "cat"
        else:
            few = ctx.few_values.get(v)
            kinds[v] = "cat" if few is not None and len(few) <= 2 else "num"
    bases: dict[str, float] = {}
    cuts: dict[str, np.ndarray | None] = {v: None for v in a.variables}
    num = [v for v in a.variables if kinds[v] == "num"]
    if not ctx.options.exact and num:
        for v in num:
            m = ctx.moments.get(v)
            sd = np.sqrt(max(m[2] / m[0] - (m[1] / m[0]) ** 2, 0.0)) if m else 0.0
            bases[v] = float(sd * ctx.options.value_base_sd) if sd > 0 else 1.0
        props = yield {
            "op": "multi",
            "ops": {v: {"op": "value_cuts", "column": v, "by": by, "base": bases[v]} for v in num},
        }
        for v in num:
            cuts[v] = shared_cuts(_proposals({s: r[v] for s, r in props.items()}))
    dt = {by: ctx.dtypes[by]} if by else {}
    ops: dict[str, Any] = {"_sizes": {"op": "t1_sizes", "by": by, "dtypes": dt}}
    for v in a.variables:
        if kinds[v] == "cat":
            ops[v] = {"op": "cat_counts", "column": v, "by": by, "dtype": ctx.dtypes[v], "dtypes": dt}
        else:
            ops[v] = {
                "op": "value_hist",
                "column": v,
                "by": by,
                "dtypes": dt,
                "cuts": cuts[v],
                "base": bases.get(v, 1.0),
            }
    replies = yield {"op": "multi", "ops": ops}
    labels, size = _group_sizes(replies)
    groups = ["Overall"] + ([f"{by}={lv}" for lv in sorted(x for x in labels if x is not None)] if by else [])
    member = {g: ([lab for lab in labels] if g == "Overall" else [g.split("=", 1)[1]]) for g in groups}
    k = ctx.policy.min_cell

    def cnt(n: int | None, denom: int | None = None) -> str:
        if n is None:
            return WITHHELD
        shown = ctx.policy.count(n)
        if shown is None:
            return f"<{k}"
        if denom is None:
            return str(shown)
        return f"{shown} ({100 * n / denom:.1f}%)" if denom else "–"

    sizes = {
        g: (ctx.n if g == "Overall" else _known_sum([x for lab in member[g] for x in size.get(lab, [])]))
        for g in groups
    }
    rows: list[dict[str, Any]] = [
        {
            "label": "n",
            "variable": None,
            "cells": {g: cnt(sizes[g]) for g in groups},
            "counts": {g: None if sizes[g] is None else ctx.policy.count(sizes[g]) for g in groups},
            "smd": None,
        }
    ]
    for v in a.variables:
        per_site = {site: r[v] for site, r in replies.items()}
        if kinds[v] == "cat":
            rows += _cat_rows(v, per_site, groups, member, cnt, ctx)
        else:
            rows += _num_rows(v, per_site, groups, member, by, ctx, exact=cuts[v] is None)
    return {"type": "table1", "by": by, "groups": groups, "rows": rows}, {}


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


def _cat_rows(
    v: str, per_site: Replies, groups: list[str], member: dict[str, list[Any]], cnt: Any, ctx: Context
) -> list[dict[str, Any]]:
    levels = sorted({lv for r in per_site.values() for lv in r.get("levels", [])})
    pos = {lv: i for i, lv in enumerate(levels)}
    # pooled counts per group label and level (last column: missing); None when any site suppressed
    pooled: dict[Any, list[list[int]]] = {}
    for site, r in per_site.items():
        c = _arr(site, r, "counts", 2, kind="i")
        if not isinstance(r.get("cells"), list) or c.shape != (len(r["cells"]), len(r.get("levels", [])) + 1):
            raise garbage(site, f"counts of {v!r} have the wrong shape")
        for i, lab in enumerate(r["cells"]):
            row = pooled.setdefault(lab, [[] for _ in range(len(levels) + 1)])
            for j, lv in enumerate(r["levels"]):
                row[pos[lv]].append(int(c[i, j]))
            row[-1].append(int(c[i, -1]))

    def group_counts(g: str) -> list[int | None]:
        out: list[int | None] = []
        for j in range(len(levels) + 1):
            vals = [x for lab in member[g] for x in pooled.get(lab, [[]] * (len(levels) + 1))[j]]
            out.append(_known_sum(vals))
        return out

    gc = {g: group_counts(g) for g in groups}
    withheld = {g: any(x is None for x in gc[g]) for g in groups}
    denom = {g: None if withheld[g] else int(sum(x for x in gc[g][:-1] if x is not None)) for g in groups}
    two = len(groups) == 3
    rows: list[dict[str, Any]] = []
    for j, level in enumerate(levels):
        counts = {g: None if withheld[g] else gc[g][j] for g in groups}
        smd = None
        if two and not (withheld[groups[1]] or withheld[groups[2]]) and denom[groups[1]] and denom[groups[2]]:
            c1, c2, d1, d2 = counts[groups[1]], counts[groups[2]], denom[groups[1]], denom[groups[2]]
            assert c1 is not None and c2 is not None and d1 and d2
            smd = _smd_binary(c1 / d1, c2 / d2)
        rows.append(
            {
                "label": f"{v} = {level}, n (%)",
                "variable": v,
                "level": level,
                "cells": {g: cnt(counts[g], denom[g]) if not withheld[g] else WITHHELD for g in groups},
                "counts": {g: None if counts[g] is None else ctx.policy.count(counts[g]) for g in groups},
                "smd": smd,
            }
        )
    miss = {g: None if withheld[g] else gc[g][-1] for g in groups}
    rows.append(
        {
            "label": f"{v}, missing",
            "variable": v,
            "cells": {g: cnt(miss[g]) for g in groups},
            "counts": {g: None if miss[g] is None else ctx.policy.count(miss[g]) for g in groups},
            "smd": None,
        }
    )
    return rows


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
