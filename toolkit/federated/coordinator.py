"""The coordinator: drives the protocols round by round and writes results.json like a pooled run.

Round 1 (hello) learns each site's size, attrition, column types and levels; then every
analysis protocol (:mod:`.protocols`) runs side by side.  Any refusal, error, missing reply or
malformed reply stops the run with a message naming the site and the round, and nothing is
written: results.json and report.html appear together, atomically, or not at all.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.analysis.predict.counts import parts_counts
from toolkit.cohort.compile import compile_cohort
from toolkit.disclosure import DisclosurePolicy
from toolkit.errors import FederatedError, SiteRefusal
from toolkit.federated.limits import RunOptions
from toolkit.federated.protocols import (
    Context,
    Protocol,
    cox_protocol,
    event_counts_protocol,
    garbage,
    logistic_protocol,
    table1_protocol,
)
from toolkit.federated.transport import Transport
from toolkit.federated.wire import decode, encode
from toolkit.study import kinds
from toolkit.study.kinds.table1 import Table1Analysis
from toolkit.study.plan import StudyPlan, plan_study
from toolkit.study.publish import CohortSummary, assemble_results, publish
from toolkit.study.results import StudyResults
from toolkit.study.spec import StudySpec

#: The protocols a kind may name (its ``protocol``); which kind uses which is declared by the kind.
PROTOCOLS: dict[str, Callable[[Context, Any], Protocol]] = {
    "event_counts": event_counts_protocol,
    "cox": cox_protocol,
    "table1": table1_protocol,
    "logistic": logistic_protocol,
}


@dataclass
class FederatedRun:
    """What a federated run produced (the CLI prints its paths; notebooks display it)."""

    spec: StudySpec
    out: Path
    results: StudyResults
    plots: dict[str, bytes] = field(repr=False)

    @property
    def report_path(self) -> Path:
        return self.out / "report.html"


class _Driver:
    def __init__(self, transport: Transport, spec_json: dict[str, Any], options: RunOptions) -> None:
        self.transport = transport
        self.spec_json = spec_json
        self.options = options
        self.round = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.sites = transport.sites()

    def exchange(self, ops: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """One round: every op to every site; returns ``{op key: {site: reply}}``."""
        self.round += 1
        payload = encode({"study": self.spec_json, "options": {"exact": self.options.exact}, "ops": ops})
        raw = self.transport.exchange(self.round, payload)
        self.bytes_sent += len(payload) * len(raw)
        self.bytes_received += sum(len(b) for b in raw.values())
        lost = [s for s in self.sites if s not in raw]
        if lost:
            raise FederatedError(
                f"round {self.round}: site {lost[0]} did not answer", site=lost[0], round_no=self.round
            )
        out: dict[str, dict[str, Any]] = {k: {} for k in ops}
        for site in self.sites:
            try:
                reply = decode(raw[site])
            except (ValueError, UnicodeDecodeError):
                raise self._at(garbage(site, "not a valid message")) from None
            if "error" in reply:
                raise FederatedError(
                    f"round {self.round}: site {site} failed: {reply['error']}",
                    site=site,
                    round_no=self.round,
                )
            answers = reply.get("ops")
            if not isinstance(answers, dict):
                raise self._at(garbage(site, "no answers"))
            for key, op in ops.items():
                a = answers.get(key)
                if not isinstance(a, dict):
                    raise self._at(garbage(site, f"no answer to {op.get('op')}"))
                if "refused" in a:
                    raise SiteRefusal(
                        f"round {self.round}: site {site} refused {op.get('op')} "
                        f"({op.get('what') or op.get('name') or op.get('column') or key}): {a['refused']}",
                        site=site,
                        round_no=self.round,
                    )
                if "error" in a:
                    raise FederatedError(
                        f"round {self.round}: site {site} failed {op.get('op')} ({key}): {a['error']}",
                        site=site,
                        round_no=self.round,
                    )
                out[key][site] = a
        return out

    def _at(self, exc: FederatedError) -> FederatedError:
        return FederatedError(f"round {self.round}: {exc}", site=exc.site, round_no=self.round)

    def drive(self, protocols: dict[str, Protocol]) -> dict[str, Any]:
        """Run protocols side by side; a protocol may ask for several ops at once ("multi")."""
        results: dict[str, Any] = {}
        pending: dict[str, tuple[Protocol, dict[str, Any]]] = {}

        def step(name: str, gen: Protocol, value: Any) -> None:
            try:
                op = gen.send(value)
            except StopIteration as stop:
                results[name] = stop.value
                return
            except FederatedError as exc:
                if exc.round_no is None:
                    raise self._at(exc) from None
                raise
            pending[name] = (gen, op)

        for name, gen in protocols.items():
            step(name, gen, None)
        while pending:
            ops: dict[str, dict[str, Any]] = {}
            for name, (_, op) in pending.items():
                if op.get("op") == "multi":
                    for sub, sop in op["ops"].items():
                        ops[f"{name}/{sub}"] = sop
                else:
                    ops[name] = op
            replies = self.exchange(ops)
            current = dict(pending)
            pending.clear()
            for name, (gen, op) in current.items():
                if op.get("op") == "multi":
                    value = {s: {sub: replies[f"{name}/{sub}"][s] for sub in op["ops"]} for s in self.sites}
                else:
                    value = replies[name]
                step(name, gen, value)
        return results


def _pooled_dtype(dtypes: list[str]) -> str:
    return str(pd.concat([pd.Series([], dtype=d) for d in dtypes]).dtype)


def _hello(
    driver: _Driver, spec: StudySpec, options: RunOptions, policy: DisclosurePolicy
) -> tuple[Context, dict[str, Any]]:
    moments = sorted({v for a in spec.analyses if isinstance(a, Table1Analysis) for v in a.variables})
    replies = driver.exchange({"hello": {"op": "hello", "moments": moments}})["hello"]
    sites = driver.sites
    n = events = 0
    dtypes: dict[str, list[str]] = {}
    levels: dict[str, set[str]] = {}
    few: dict[str, set[float] | None] = {}
    mom: dict[str, list[float] | None] = {}
    attrition: list[list[dict[str, Any]]] = []
    quality: dict[tuple[str, str], list[int]] = {}
    labels: dict[str, list[list[int]]] = {}
    attributes: dict[str, str] | None = None
    digests = []
    for site in sites:
        r = replies[site]
        try:
            n += int(r["n"])
            events += int(r["events"])
            digests.append(str(r["registry_digest"]))
            for c, d in r["dtypes"].items():
                dtypes.setdefault(c, []).append(str(d))
            for c, lv in r["levels"].items():
                levels.setdefault(c, set()).update(str(x) for x in lv)
            for c, fv in r["few_values"].items():
                prev = few.get(c, set())
                few[c] = None if fv is None or prev is None else prev | {float(x) for x in fv}
            for c, m in r["moments"].items():
                if m is not None:
                    acc = mom.get(c) or [0.0, 0.0, 0.0]
                    mom[c] = [acc[i] + float(m[i]) for i in range(3)]
                else:
                    mom.setdefault(c, None)
            attrition.append(list(r["attrition"]))
            for c, parts in r.get("horizon_labels", {}).items():
                labels.setdefault(str(c), []).append([int(x) for x in parts][:3])
            for q in r.get("data_quality", []):
                quality.setdefault((str(q["modality"]), str(q["issue"])), []).append(int(q["count"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            raise driver._at(garbage(site, "malformed hello")) from None
        if attributes is None:
            attributes = dict(r["attributes"])
        elif dict(r["attributes"]) != attributes:
            raise FederatedError(
                f"round 1: site {site}'s registry declares other person attributes than site {sites[0]}'s",
                site=site,
                round_no=1,
            )
    ctx = Context(
        options=options,
        policy=policy,
        sites=sites,
        n=n,
        dtypes={c: _pooled_dtype(d) for c, d in dtypes.items()},
        levels={c: sorted(v) for c, v in levels.items()},
        few_values={c: None if v is None else sorted(v) for c, v in few.items()},
        moments={c: None if m is None else (m[0], m[1], m[2]) for c, m in mom.items()},
    )
    info = {
        "events": events,
        "attrition": _pool_attrition(attrition),
        "horizon_counts": {c: _horizon_counts(p, len(sites), policy) for c, p in labels.items()},
        "attributes": attributes or {},
        "data_quality": [
            {"modality": m, "issue": i, "count": None if any(c < 0 for c in v) else sum(v)}
            for (m, i), v in sorted(quality.items())
        ],
        "digest": "sha256:"
        + hashlib.sha256(
            ";".join(f"{s}={d}" for s, d in zip(sites, digests, strict=True)).encode()
        ).hexdigest(),
    }
    return ctx, info


def _horizon_counts(parts: list[list[int]], sites: int, policy: DisclosurePolicy) -> dict[str, int | None]:
    """A horizon label's evaluable persons and events by the horizon, from the sites' parts
    (events, outcome-free, unknown): withheld where a site withheld a part, or where a pooled
    part is 1..k-1 (as :func:`toolkit.analysis.predict.counts.label_counts` does)."""
    if len(parts) != sites or any(len(p) != 3 or min(p) < 0 for p in parts):
        return {"n_evaluable": None, "events_at_horizon": None}
    events, free, unknown = (sum(p[i] for p in parts) for i in range(3))
    return parts_counts(events, free, unknown, policy)


def _pool_attrition(tables: list[list[dict[str, Any]]]) -> pd.DataFrame:
    """Step-wise sums of the sites' attrition tables (unknown where any site suppressed)."""
    first = tables[0]
    rows = []
    for i, step in enumerate(first):
        row: dict[str, Any] = {"step": step["step"], "kind": step["kind"]}
        for col in ("n", "removed", "entries", "events"):
            vals: list[Any] = [t[i].get(col) if i < len(t) else None for t in tables]
            known = [int(v) for v in vals if v is not None]
            row[col] = sum(known) if len(known) == len(vals) else None
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def run_federated(
    study: Path | str | StudyPlan,
    transport: Transport,
    *,
    out: Path | str,
    options: RunOptions | None = None,
    progress: Callable[[str], object] | None = None,
) -> FederatedRun:
    """Run a study's analyses across sites; publish results.json and report.html into ``out``."""
    options = options or RunOptions()
    plan = plan_study(study)
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    driver = _Driver(transport, plan.spec.model_dump(mode="json"), options)
    say("round 1: hello")
    ctx, info = _hello(driver, plan.spec, options, plan.policy)
    ctx.study = plan.context  # labels, horizon: the figures a pooled run would draw
    compiled = compile_cohort(plan.cohort, attributes=info["attributes"], source="cohort")
    analyses, plots, skipped = _run_protocols(plan, driver, ctx)
    federated = {
        "transport": transport.name,
        "sites": ctx.sites,
        "rounds": driver.round,
        "bytes_sent": driver.bytes_sent,
        "bytes_received": driver.bytes_received,
        "seconds": round(time.perf_counter() - started, 3),
        **options.to_dict(),
        "time_bins": ctx.time_bins,
        "analyses_not_run": skipped,
        "models_not_run": [
            {
                "model": m.name,
                "type": m.type,
                "reason": "cross-validated risk models need row-level predictions",
            }
            for m in plan.spec.models
        ],
    }
    cohort = CohortSummary(
        compiled.name,
        ctx.n,
        info["events"],
        compiled.horizons,
        info["attrition"],
        horizon_counts={
            name: info["horizon_counts"][name]
            for name, _ in compiled.horizons
            if name in info["horizon_counts"]
        },
    )
    results = assemble_results(
        plan,
        cohort,
        registry={"source": "federated:" + ",".join(ctx.sites), "digest": info["digest"]},
        analyses=analyses,
        models={},
        data_quality=info["data_quality"],
        run_id=None,
        federated=federated,
    )
    say("report")
    publish(plan, results, out=Path(out), plots=plots, attrition=info["attrition"])
    return FederatedRun(plan.spec, Path(out), results, plots)


def _run_protocols(
    plan: StudyPlan, driver: _Driver, ctx: Context
) -> tuple[dict[str, Any], dict[str, bytes], list[dict[str, Any]]]:
    """Every analysis whose kind names a protocol, side by side; the others, with the reason."""
    by_kind = kinds.protocols()
    why = kinds.not_federated()
    federable = [a for a in plan.spec.analyses if a.type in by_kind]
    skipped = [
        {"analysis": a.name, "type": a.type, "reason": why.get(a.type, "no federated protocol")}
        for a in plan.spec.analyses
        if a.type not in by_kind
    ]
    outputs = driver.drive({a.name: PROTOCOLS[by_kind[a.type]](ctx, a) for a in federable})
    analyses: dict[str, Any] = {}
    plots: dict[str, bytes] = {}
    for a in federable:
        analyses[a.name], pl = outputs[a.name]
        plots.update(pl)
    return analyses, plots, skipped
