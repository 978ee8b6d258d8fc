"""A site node: runs the study's cohort and features on its own registry and answers with aggregates.

The node receives a request holding the study (a declarative spec: no code, no SQL) and a set
of named operations; it answers each with aggregates after checking its own limits
(:class:`~toolkit.federated.limits.SiteLimits`).  Rows never leave: what a reply may
hold is listed per operation below and in docs/privacy.md.  A node that will not release an
aggregate answers ``{"refused": reason}``; the reason names rules and columns, never values.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.analysis.design import design_matrix, is_categorical
from toolkit.analysis.logistic import logistic_stats
from toolkit.disclosure import DisclosurePolicy
from toolkit.disclosure.joint import MISSING as JOINT_MISSING
from toolkit.disclosure.joint import PRESENT, Crosstab, Decisions, x_key
from toolkit.errors import FederatedError, SiteRefusal, ToolkitError
from toolkit.federated.bins import assign, base_index, propose_cuts
from toolkit.federated.limits import SiteLimits
from toolkit.registry.store import Registry

Reply = dict[str, Any]
MISSING = -1  # a suppressed count in an integer array


@dataclass
class SiteData:
    """The study's cohort+features frame at this site and its attrition table (never sent)."""

    frame: pd.DataFrame
    attrition: pd.DataFrame
    n: int
    events: int
    has_outcome: bool
    digest: str
    attributes: dict[str, str]
    quality: list[dict[str, Any]]  # data-quality counts per modality and issue (no ids)


def study_data(spec_json: dict[str, Any], registry: Path) -> SiteData:
    """The study's cohort and features on this registry: the study engine's own data stage
    (:func:`toolkit.study.data.build_study_data`), as a pooled run builds them.

    A note lexicon given as a file path would have to exist at the site; the packaged
    lexicons need nothing.
    """
    from toolkit.study.data import build_study_data, compile_study
    from toolkit.study.plan import plan_from_spec
    from toolkit.study.spec import StudySpec

    spec = StudySpec.model_validate(spec_json)
    plan = plan_from_spec(spec, source=f"study {spec.name}")
    with Registry(registry) as reg:
        compiled = compile_study(plan, reg)
        data = build_study_data(plan, reg, compiled=compiled)
    return SiteData(
        data.frame,
        data.cohort.attrition.table,
        data.cohort.n,
        data.cohort.events,
        compiled.cohort.has_outcome,
        data.digest,
        data.attributes,
        data.quality,
    )


def _spec_key(spec_json: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec_json, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _label(v: Any) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


class SiteNode:
    """Answers federated requests from one registry.

    >>> node = SiteNode("data/sites/SITE01.duckdb", name="SITE01")  # doctest: +SKIP
    >>> node.handle({"study": spec_json, "options": {...}, "ops": {"hello": {"op": "hello"}}})  # doctest: +SKIP
    """

    def __init__(
        self,
        registry: Path | str,
        *,
        name: str,
        limits: SiteLimits | None = None,
        cache_dir: Path | str | None = None,
    ) -> None:
        self.registry = Path(registry)
        self.name = name
        self.limits = limits or SiteLimits()
        self.policy = DisclosurePolicy(self.limits.min_cell)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._data: dict[str, SiteData] = {}
        self._t1: dict[tuple[int, str], Decisions] = {}

    # --- data ----------------------------------------------------------------------------
    def data(self, spec_json: dict[str, Any]) -> SiteData:
        key = _spec_key(spec_json)
        if key in self._data:
            return self._data[key]
        path = self.cache_dir / f"study-{key}.pkl" if self.cache_dir else None
        data: SiteData | None = None
        if path is not None and path.exists():
            with path.open("rb") as fh:
                data = pickle.load(fh)  # the site's own cache file, written below
        if data is None:
            data = study_data(spec_json, self.registry)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                with tmp.open("wb") as fh:
                    pickle.dump(data, fh)
                tmp.replace(path)
        self._data[key] = data
        return data

    # --- entry points ----------------------------------------------------------------------
    def handle_bytes(self, payload: bytes) -> bytes:
        """Answer one wire-encoded request (what every transport calls)."""
        from toolkit.federated.wire import decode, encode

        try:
            request = decode(payload)
        except (ValueError, UnicodeDecodeError):
            return encode({"site": self.name, "error": "the request is not a valid message"})
        if request.get("identify"):
            return encode({"site": self.name})
        return encode(self.handle(request))

    def handle(self, request: dict[str, Any]) -> Reply:
        """Answer every operation of a request; refusals are answers, other failures errors."""
        try:
            spec_json = request["study"]
            ops = request["ops"]
            exact = bool(request.get("options", {}).get("exact", False))
            if not isinstance(ops, dict) or not isinstance(spec_json, dict):
                raise KeyError("ops")
        except (KeyError, TypeError, AttributeError):
            return {"site": self.name, "error": "malformed request (expected study, options and ops)"}
        try:
            data = self.data(spec_json)
        except ToolkitError as exc:
            return {"site": self.name, "error": f"cannot run the study here: {exc}"}
        replies: dict[str, Reply] = {}
        for key, op in ops.items():
            fn = _OPS.get(str(op.get("op"))) if isinstance(op, dict) else None
            if fn is None:
                replies[key] = {
                    "error": f"unknown operation {op.get('op') if isinstance(op, dict) else op!r}"
                }
                continue
            if exact and not self.limits.allow_exact and op.get("op") in _EXACT_OPS:
                replies[key] = {
                    "refused": "exact per-time/per-value counts were requested but this site does not "
                    "allow them (its allow_exact setting is off)"
                }
                continue
            try:
                replies[key] = fn(self, data, op, exact)
            except SiteRefusal as exc:
                replies[key] = {"refused": str(exc)}
            except (ToolkitError, KeyError, ValueError, TypeError) as exc:
                replies[key] = {"error": f"{type(exc).__name__}: {exc}"}
        return {"site": self.name, "ops": replies}

    # --- checks ----------------------------------------------------------------------------
    def _check_sample(self, n: int, events: int | None, what: str, *, parameters: int = 0) -> None:
        lim = self.limits
        if n < lim.min_persons:
            raise SiteRefusal(f"{what}: fewer than {lim.min_persons} persons at this site (min_persons)")
        if events is not None and events < lim.min_events:
            raise SiteRefusal(f"{what}: fewer than {lim.min_events} events at this site (min_events)")
        if parameters and n < lim.persons_per_parameter * parameters:
            raise SiteRefusal(
                f"{what}: {parameters} parameters need at least {lim.persons_per_parameter} persons per "
                "parameter at this site (persons_per_parameter)"
            )

    def _check_groups(self, sizes: dict[str | None, int], what: str) -> None:
        small = [g for g, n in sizes.items() if 0 < n < self.limits.min_persons]
        if small:
            raise SiteRefusal(
                f"{what}: {len(small)} group(s) have between 1 and {self.limits.min_persons - 1} persons "
                "at this site (min_persons)"
            )

    def _count(self, n: int) -> int:
        c = self.policy.count(n)
        return MISSING if c is None else int(c)


# --- operations --------------------------------------------------------------------------
def _hello(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Site size, attrition (disclosure-controlled), column types, levels and moments.

    Releases: n and events (refused below the minimums), the attrition table after
    complementary suppression, each column's dtype, the levels of text columns, the distinct
    values of numeric columns with at most two of them (binary indicators), and per requested
    numeric column the count, sum and sum of squares of its values (when >= min_persons).
    """
    node._check_sample(data.n, data.events if data.has_outcome else None, "cohort")
    frame = data.frame
    levels: dict[str, list[str]] = {}
    few: dict[str, list[float] | None] = {}
    for c in frame.columns:
        if c in ("person_id", "index_time"):
            continue
        s = frame[c]
        if is_categorical(s):
            levels[c] = sorted(s.dropna().astype(str).unique().tolist())
        elif pd.api.types.is_numeric_dtype(s):
            u = pd.unique(s.dropna().astype(float))
            few[c] = sorted(float(x) for x in u) if len(u) <= 2 else None
    moments: dict[str, list[float] | None] = {}
    for c in op.get("moments", []):
        if c not in frame.columns or not pd.api.types.is_numeric_dtype(frame[c]):
            moments[c] = None
            continue
        x = frame[c].dropna().astype(float).to_numpy()
        moments[c] = (
            None
            if len(x) < node.limits.min_persons
            else [float(len(x)), float(x.sum()), float((x * x).sum())]
        )
    attrition = node.policy.attrition(data.attrition)
    labels = {}  # per horizon label: outcome by h, outcome-free at h, unknown (1..k-1 withheld)
    for c in (c for c in frame.columns if str(c).startswith("label_")):
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        parts = (int((v == 1).sum()), int((v == 0).sum()), int(np.isnan(v).sum()))
        labels[str(c)] = [node._count(x) for x in parts]
    return {
        "horizon_labels": labels,
        "n": data.n,
        "events": data.events,
        "has_outcome": data.has_outcome,
        "registry_digest": data.digest,
        "attributes": data.attributes,
        "dtypes": {c: str(frame[c].dtype) for c in frame.columns if c not in ("person_id", "index_time")},
        "levels": levels,
        "few_values": few,
        "moments": moments,
        "attrition": [
            {k: (None if (v is None or (isinstance(v, float) and np.isnan(v))) else v) for k, v in r.items()}
            for r in attrition.to_dict("records")
        ],
        "limits": node.limits.to_dict(),
        "data_quality": [
            {"modality": str(q["modality"]), "issue": str(q["issue"]), "count": node._count(int(q["count"]))}
            for q in data.quality
        ],
    }


def _labels(frame: pd.DataFrame, cols: list[str], dtypes: dict[str, str]) -> list[tuple[str | None, ...]]:
    """Each row's group labels as text (cast to the pooled dtype first, so labels match a pooled run)."""
    if not cols:
        return [()] * len(frame)
    parts = []
    for c in cols:
        s = frame[c].astype(dtypes[c]) if c in dtypes else frame[c]
        parts.append([_label(v) for v in s])
    return list(zip(*parts, strict=True))


def _survival_sample(
    data: SiteData, op: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, list[tuple[str | None, ...]], np.ndarray]:
    """Rows of a time-to-event histogram: time, event code, group labels and each row's group."""
    sample = data.frame.dropna(subset=[op["time"], op["event"]])
    t = sample[op["time"]].to_numpy(float)
    code = sample[op["event"]].astype(int).to_numpy()
    keys = _labels(sample, list(op.get("cells", [])), op.get("dtypes", {}))
    labels = sorted(set(keys), key=lambda k: tuple("" if x is None else "\x01" + x for x in k))
    index = {k: i for i, k in enumerate(labels)}
    return t, code, labels, np.array([index[k] for k in keys], dtype=np.int64)


def _event_cells(code: np.ndarray, cell: np.ndarray) -> tuple[np.ndarray, int]:
    """One cell per (group, event code >= 1): the rule applies to each cause in each group."""
    causes = np.unique(code[code >= 1])
    pos = np.searchsorted(causes, code)
    return cell * max(len(causes), 1) + np.where(code >= 1, pos, 0), (
        int(cell.max()) + 1 if len(cell) else 1
    ) * max(len(causes), 1)


def _surv_cuts(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Where this site's bins of the time axis end (binned mode): base-bin indices only."""
    what = op.get("what", "time-to-event analysis")
    t, code, _, cell = _survival_sample(data, op)
    node._check_sample(len(t), int((code >= 1).sum()), what)
    cells, n_cells = _event_cells(code, cell)
    prop = propose_cuts(
        base_index(t, float(op["base"])), cells, n_cells, node.limits.min_bin, what=what, counted=code >= 1
    )
    return prop.to_wire()


def _surv_hist(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Persons per group, time and event code (0 = censored): per distinct time (exact) or shared bin.

    Releases: the group labels, the event codes present, the times (distinct follow-up times
    in exact mode; the shared bins' right edges in binned mode) and the counts.
    """
    what = op.get("what", "time-to-event analysis")
    t, code, labels, cell = _survival_sample(data, op)
    node._check_sample(len(t), int((code >= 1).sum()), what)
    node._check_groups({str(k): int((cell == i).sum()) for i, k in enumerate(labels)}, what)
    if exact:
        times, pos = np.unique(t, return_inverse=True)
    else:
        cuts = np.asarray(op["cuts"], np.int64)
        base = float(op["base"])
        pos = assign(base_index(t, base), cuts)
        times = cuts.astype(float) * base
    codes = np.unique(code)
    ci = np.searchsorted(codes, code)
    counts = np.zeros((len(labels), len(codes), len(times)), np.int64)
    np.add.at(counts, (cell, ci, pos), 1)
    if not exact:
        for j, c in enumerate(codes):
            if c >= 1:
                _check_bins(counts[:, j, :], node.limits.min_bin, what)
    return {"cells": [list(k) for k in labels], "codes": codes, "time": times, "counts": counts}


def _check_bins(counts: np.ndarray, m: int, what: str) -> None:
    """Every released bin holds >= m per group (a group with none anywhere is exempt)."""
    live = counts.sum(axis=1) > 0
    if np.any(counts[live] < m):
        raise SiteRefusal(f"{what}: the shared bins would release a bin with fewer than {m} events or values")


def _value_sample(data: SiteData, op: dict[str, Any]) -> tuple[pd.Series, list[str | None], np.ndarray]:
    frame = data.frame
    by = op.get("by")
    keys = [k[0] for k in _labels(frame, [by], op.get("dtypes", {}))] if by else [None] * len(frame)
    labels = sorted(set(keys), key=lambda k: "" if k is None else "\x01" + k)
    code = {k: i for i, k in enumerate(labels)}
    return frame[op["column"]], labels, np.array([code[k] for k in keys], dtype=np.int64)


def _t1_decisions(node: SiteNode, data: SiteData, op: dict[str, Any]) -> Decisions:
    """What this site's Table 1 replies withhold: every count of the request (group sizes, each
    variable's levels and missing per group, a numeric variable's count of values per group) is
    one cell of one linear system, protected at once by the rules of a pooled run
    (:meth:`DisclosurePolicy.decide`), so that no reply gives another's withheld cell away."""
    table = op.get("table")
    if not isinstance(table, dict) or not isinstance(table.get("variables"), list):
        raise ValueError("Table 1 operations need the request's table (by and variables)")
    key = (id(data), json.dumps(table, sort_keys=True, default=str))
    if key in node._t1:
        return node._t1[key]
    by, dtypes = table.get("by"), table.get("dtypes") or {}
    cols: dict[str, Any] = {}
    if by:
        cols[by] = [lab[0] for lab in _labels(data.frame, [by], dtypes)]
    tabs = []
    for v, kind in table["variables"]:
        s = data.frame[v]
        cols[v] = s.astype(dtypes[v]) if kind == "cat" and v in dtypes else s
        numeric = kind != "cat"
        tabs.append(Crosstab(v, by, numeric=numeric, margins=False, all_groups=True, values=numeric))
    frame = pd.DataFrame({c: v if isinstance(v, list) else v.to_numpy() for c, v in cols.items()})
    decided = node.policy.decide(frame, tabs)
    node._t1[key] = decided
    return decided


def _t1_key(var: str, level: str, by: str | None, label: str | None) -> Any:
    """The cell of ``var == level`` in the group ``label`` (the whole site without ``by``)."""
    if not by:
        return ("m", var, level)
    return x_key((var, level), (by, JOINT_MISSING if label is None else label))


def _withheld_groups(decided: Decisions, v: str, by: str | None, labels: list[str | None]) -> np.ndarray:
    """Groups whose values of a numeric variable are not released: their missing count or their
    count of values (a histogram's total) is withheld."""
    return np.array(
        [
            decided.withheld(_t1_key(v, JOINT_MISSING, by, lab))
            or decided.withheld(_t1_key(v, PRESENT, by, lab))
            for lab in labels
        ],
        dtype=bool,
    )


def _value_cuts(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    s, labels, cell = _value_sample(data, op)
    withheld = _withheld_groups(_t1_decisions(node, data, op), op["column"], op.get("by"), labels)
    ok = s.notna().to_numpy() & ~withheld[cell]
    prop = propose_cuts(
        base_index(s[ok].astype(float).to_numpy(), float(op["base"])),
        cell[ok],
        len(labels),
        node.limits.min_bin,
        what=f"Table 1 variable {op['column']!r}",
    )
    return prop.to_wire()


def _value_hist(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Counts of a numeric variable's values per group: per distinct value or per shared bin.

    Releases per group: the missing count, and either the distinct values with their counts
    (exact) or per shared bin the count and the sum of the values in it (binned).  A group
    whose missing count or count of values the site's Table 1 decisions withhold
    (:func:`_t1_decisions`) is withheld entirely.
    """
    s, labels, cell = _value_sample(data, op)
    ok = s.notna().to_numpy()
    missing = np.bincount(cell[~ok], minlength=len(labels))
    withheld = _withheld_groups(_t1_decisions(node, data, op), op["column"], op.get("by"), labels)
    keep = ok & ~withheld[cell]
    x = s[keep].astype(float).to_numpy()
    c = cell[keep]
    out: Reply = {
        "cells": labels,
        "withheld": withheld,
        "missing": np.where(withheld, MISSING, missing),
    }
    if exact:
        values, pos = np.unique(x, return_inverse=True)
        counts = np.zeros((len(labels), len(values)), np.int64)
        np.add.at(counts, (c, pos), 1)
        out.update(values=values, counts=counts)
        return out
    cuts = np.asarray(op["cuts"], np.int64)
    pos = assign(base_index(x, float(op["base"])), cuts)
    counts = np.zeros((len(labels), len(cuts)), np.int64)
    sums = np.zeros((len(labels), len(cuts)))
    np.add.at(counts, (c, pos), 1)
    np.add.at(sums, (c, pos), x)
    _check_bins(counts, node.limits.min_bin, f"Table 1 variable {op['column']!r}")
    out.update(counts=counts, sums=sums)
    return out


def _t1_sizes(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Group sizes for Table 1, withheld as the site's Table 1 decisions say (:func:`_t1_decisions`)."""
    _, labels, cell = _value_sample(data, {**op, "column": data.frame.columns[0]})
    sizes = np.bincount(cell, minlength=len(labels))
    by = op.get("by")
    if by:
        decided = _t1_decisions(node, data, op)
        hide = [decided.withheld(("m", by, JOINT_MISSING if lab is None else lab)) for lab in labels]
        sizes = np.where(hide, MISSING, sizes)
    return {"cells": labels, "size": sizes}


def _cat_counts(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Counts per group and level of a categorical variable, the last column the missing count,
    withheld (-1) as the site's Table 1 decisions say (:func:`_t1_decisions`): each group's row
    adds up to its size and every reply shares the group sizes, so they are protected together."""
    s, labels, cell = _value_sample(data, op)
    dtype = op.get("dtype")
    if dtype:
        s = s.astype(dtype)
    ok = s.notna().to_numpy()
    text = s.astype(str).to_numpy()
    levels = sorted(set(text[ok].tolist()))
    index = {lv: i for i, lv in enumerate(levels)}
    counts = np.zeros((len(labels), len(levels) + 1), np.int64)
    if ok.any():
        np.add.at(counts, (cell[ok], np.array([index[v] for v in text[ok]], np.int64)), 1)
    counts[:, -1] = np.bincount(cell[~ok], minlength=len(labels))
    decided = _t1_decisions(node, data, op)
    by, v = op.get("by"), op["column"]
    for i, lab in enumerate(labels):
        for j, lv in enumerate([*levels, JOINT_MISSING]):
            if decided.withheld(_t1_key(v, lv, by, lab)):
                counts[i, j] = MISSING
    return {"cells": labels, "levels": levels, "counts": counts}


def _design(
    data: SiteData, columns: list[str], covariates: list[str], levels: dict[str, list[str]]
) -> tuple[pd.DataFrame, np.ndarray, int]:
    frame = data.frame
    sample = frame.dropna(subset=columns)
    lv = {k: tuple(v) for k, v in levels.items()}
    x = design_matrix(sample, covariates, lv).matrix if len(sample) else np.zeros((0, 0))
    return sample, x, len(frame) - len(sample)


def _cox_sample(
    data: SiteData, op: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], int]:
    cols = [op["time"], op["event"], *op["covariates"]] + ([op["strata"]] if op.get("strata") else [])
    sample, x, dropped = _design(data, cols, op["covariates"], op.get("levels", {}))
    t = sample[op["time"]].to_numpy(float)
    d = (sample[op["event"]].astype(int) == int(op.get("cause", 1))).to_numpy().astype(float)
    strata = sample[op["strata"]].astype(str).tolist() if op.get("strata") else ["all"] * len(sample)
    return x, t, d, strata, dropped


def _lacking(node: SiteNode, data: SiteData, covariates: list[str]) -> Reply:
    """Persons lacking each covariate, and any (the regression's missing-data statement), 1..k-1
    withheld."""
    na = data.frame[covariates].isna()
    return {
        "missing": np.array([node._count(int(na[c].sum())) for c in covariates], dtype=np.int64),
        "lacking": node._count(int(na.any(axis=1).sum())),
    }


def _moments(x: np.ndarray) -> Reply:
    return {"sum_x": x.sum(axis=0), "sum_xx": x.T @ x}


def _cox_summary(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Complete-case size and events, and the covariates' sums and cross-products."""
    x, _, d, strata, dropped = _cox_sample(data, op)
    what = f"Cox model {op.get('name', '')}".strip()
    node._check_sample(len(d), int(d.sum()), what, parameters=x.shape[1] if x.size else 1)
    node._check_groups({s: strata.count(s) for s in set(strata)}, f"{what}: strata")
    return {"n": len(d), "events": int(d.sum()), "dropped": node._count(dropped),
            **_lacking(node, data, op["covariates"]), **_moments(x)}  # fmt: skip


def _cox_cuts(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    x, t, d, strata, _ = _cox_sample(data, op)
    what = f"Cox model {op.get('name', '')}".strip()
    node._check_sample(len(d), int(d.sum()), what, parameters=x.shape[1] if x.size else 1)
    labels = sorted(set(strata))
    code = {s: i for i, s in enumerate(labels)}
    cells = np.array([code[s] for s in strata], np.int64)
    return propose_cuts(
        base_index(t, float(op["base"])), cells, len(labels), node.limits.min_bin, what=what, counted=d > 0
    ).to_wire()


def _cox_stats(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Risk-set pieces at the coordinator's beta, per stratum and time (or shared bin).

    Per time: a0 = sum of r, a1 = sum of r x, a2 = sum of r x x' (upper triangle) over persons whose follow-up
    ends then (pooled risk sets are their reverse cumulative sums); d = events, e0/e1/e2 the
    same sums over the events only (Efron); per stratum the sums of x and of the linear
    predictor over events.  r = exp((x - centre) beta).
    """
    x, t, d, strata, _ = _cox_sample(data, op)
    what = f"Cox model {op.get('name', '')}".strip()
    p = x.shape[1]
    node._check_sample(len(d), int(d.sum()), what, parameters=p)
    beta = np.asarray(op["beta"], float)
    center = np.asarray(op["center"], float)
    if beta.shape != (p,) or center.shape != (p,):
        raise ValueError(f"beta and centre must have {p} entries")
    xc = x - center
    eta = xc @ beta
    r = np.exp(eta)
    if exact:
        tt = t
    else:
        cuts = np.asarray(op["cuts"], np.int64)
        base = float(op["base"])
        tt = cuts[assign(base_index(t, base), cuts)].astype(float) * base
    out = []
    s_arr = np.array(strata, dtype=object)
    for label in sorted(set(strata)):
        m = s_arr == label
        times, pos = np.unique(tt[m], return_inverse=True)
        xm, rm, dm, em = xc[m], r[m], d[m], eta[m]
        T = len(times)
        a0 = np.bincount(pos, weights=rm, minlength=T)
        a1 = np.zeros((T, p))
        np.add.at(a1, pos, rm[:, None] * xm)
        outer = np.einsum("i,ij,ik->ijk", rm, xm, xm)
        a2 = np.zeros((T, p, p))
        np.add.at(a2, pos, outer)
        ev = dm > 0
        dcount = np.bincount(pos, weights=dm, minlength=T)
        e0 = np.bincount(pos[ev], weights=rm[ev], minlength=T)
        e1 = np.zeros((T, p))
        np.add.at(e1, pos[ev], (rm[:, None] * xm)[ev])
        e2 = np.zeros((T, p, p))
        np.add.at(e2, pos[ev], outer[ev])
        if not exact:
            _check_bins(dcount[None, :], node.limits.min_bin, what)
        iu = np.triu_indices(p)  # symmetric: send the upper triangle only
        out.append(
            {
                "stratum": label,
                "time": times,
                "a0": a0,
                "a1": a1,
                "a2": a2[:, iu[0], iu[1]],
                "d": dcount,
                "e0": e0,
                "e1": e1,
                "e2": e2[:, iu[0], iu[1]],
                "ex": xm[ev].sum(axis=0),
                "eeta": float(em[ev].sum()),
            }
        )
    return {"strata": out}


def _logistic_sample(data: SiteData, op: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, int]:
    sample, x, dropped = _design(
        data, [op["outcome"], *op["covariates"]], op["covariates"], op.get("levels", {})
    )
    y = sample[op["outcome"]].astype(float).to_numpy()
    if not np.isin(y, (0.0, 1.0)).all():
        raise SiteRefusal(f"logistic regression: outcome {op['outcome']!r} is not 0/1 at this site")
    return np.column_stack([np.ones(len(sample)), x]) if len(sample) else np.zeros((0, 1)), y, dropped


def _logistic_summary(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    x, y, dropped = _logistic_sample(data, op)
    what = f"logistic regression {op.get('name', '')}".strip()
    node._check_sample(len(y), int(min(y.sum(), len(y) - y.sum())), what, parameters=x.shape[1])
    return {"n": len(y), "events": int(y.sum()), "dropped": node._count(dropped),
            **_lacking(node, data, op["covariates"]), **_moments(x)}  # fmt: skip


def _logistic_stats(node: SiteNode, data: SiteData, op: dict[str, Any], exact: bool) -> Reply:
    """Log-likelihood, score and information at the coordinator's beta (sums over persons)."""
    x, y, _ = _logistic_sample(data, op)
    what = f"logistic regression {op.get('name', '')}".strip()
    node._check_sample(len(y), int(min(y.sum(), len(y) - y.sum())), what, parameters=x.shape[1])
    beta = np.asarray(op["beta"], float)
    if beta.shape != (x.shape[1],):
        raise ValueError(f"beta must have {x.shape[1]} entries")
    st = logistic_stats(x, y, beta)
    return {"loglik": st.loglik, "score": st.score, "info": st.information}


_OPS: dict[str, Callable[[SiteNode, SiteData, dict[str, Any], bool], Reply]] = {
    "hello": _hello,
    "surv_cuts": _surv_cuts,
    "surv_hist": _surv_hist,
    "value_cuts": _value_cuts,
    "value_hist": _value_hist,
    "cat_counts": _cat_counts,
    "t1_sizes": _t1_sizes,
    "cox_summary": _cox_summary,
    "cox_cuts": _cox_cuts,
    "cox_stats": _cox_stats,
    "logistic_summary": _logistic_summary,
    "logistic_stats": _logistic_stats,
}
#: operations whose exact form releases per-time or per-value counts
_EXACT_OPS = frozenset(
    {"hello", "surv_hist", "value_hist", "cox_stats"}
)  # hello: refuse an exact run at once

__all__ = ["FederatedError", "SiteData", "SiteLimits", "SiteNode", "study_data"]
