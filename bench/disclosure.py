"""Disclosure control at three study sizes: the optimal suppression against the greedy heuristic it
replaced, on the same linear system, and the scanner.

    .venv/bin/python bench/disclosure.py [--sizes 120,1000,5000] [--repeat 1]

For each size a synthetic heart-failure registry is built (notes and images off) with a cohort of
about that many persons, and the study of tests/disclosure/test_small_study.py is planned on it:
Table 1 by sex (age band rows) and by age band (sex rows), Kaplan-Meier and cumulative incidence
by age band, and the subgroup table of a model (sex, age band, site).  Every count those tables
show is one system (toolkit.disclosure.joint); it is protected

* by ``protect_run`` (the mixed-integer model of toolkit.disclosure.suppress, as a run uses it), and
* by ``protect_greedy`` (one complementary cell at a time, audited after each: the baseline),

and each pattern is audited: the LP audit (determined, bounded in 1..k-1, differencing) and the
marker-aware integer audit.  Then the analyses run under the run's decisions and the scanner
reads the results.json they make (``derive_results``).  Printed per size: cells, cells withheld
beyond the primary ones (and their total value), seconds, whether each pattern passes both audits,
the time ratio greedy/optimal, and the scan's seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.disclosure.test_small_study import ANALYSES, small_study  # noqa: E402
from toolkit.disclosure import DisclosurePolicy  # noqa: E402
from toolkit.disclosure.audit import exposures, labelled_exposures, protect_greedy  # noqa: E402
from toolkit.disclosure.derive import derive_results  # noqa: E402
from toolkit.disclosure.joint import MISSING, Partition, RunCells, protect_run, run_cells  # noqa: E402
from toolkit.disclosure.suppress import information_loss  # noqa: E402

K = 10
#: patients to synthesise for a cohort of about the given size (about 9 in 10 enter it)
PATIENTS = {120: 130, 1000: 1110, 5000: 5560}


def cohort_frame(persons: int, folder: Path):  # type: ignore[no-untyped-def]
    from toolkit.registry.store import Registry
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize
    from toolkit.study.data import build_study_data
    from toolkit.study.plan import plan_study

    patients = PATIENTS.get(persons, round(persons * 1.11))
    registry = synthesize(folder / "hf.duckdb", SynthConfig(patients, 3, 2, notes=False, images=False))
    study = small_study(folder / "study", registry)
    plan = plan_study(study)
    with Registry(registry) as reg:
        return plan, build_study_data(plan, reg).frame


def system(plan, frame) -> RunCells:  # type: ignore[no-untyped-def]
    from toolkit.study.kinds import run_tabulations

    tabs = run_tabulations(plan.spec, frame)
    assert any(isinstance(t, Partition) and t.with_missing for t in tabs)  # the subgroup table
    return run_cells(frame, tabs)


def audit(cells: RunCells, status: dict) -> bool:  # type: ignore[type-arg]
    """Both audits: nothing a reader of the margins, or of the margins and the markers, gets."""
    hidden = {k for k, s in status.items() if s != "published"}
    unpublished = {k for k, s in status.items() if s == "unpublished"}
    found = [
        e
        for e in exposures(cells.table, hidden, min_cell=K)
        if not (set(e.cells) <= unpublished and not (e.lower >= 0.5 and e.upper <= K - 0.5))
    ]
    labels = {k: (None if s == "unpublished" else s) for k, s in status.items() if s != "published"}
    watch = {k for k in hidden if k not in unpublished or 1 <= cells.table.values[k] < K}
    listed = {k: 1 for k in cells.shown if k[0] == "m" and k[2] != MISSING and cells.table.values[k] >= 1}
    lab = labelled_exposures(cells.table, hidden, min_cell=K, labels=labels, watch=watch, at_least=listed)
    return not found and not lab


def run(persons: int, repeat: int) -> dict[str, object]:
    from toolkit.study.kinds import run_analysis, run_policy

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plan, frame = cohort_frame(persons, Path(tmp))
        cells = system(plan, frame)
        unpublished = {k for k in cells.table.values if k not in cells.shown} - cells.revealed
        fixed = {("n",): "published", **dict.fromkeys(cells.revealed, "published")}
        times: dict[str, list[float]] = {"optimal": [], "greedy": []}
        for _ in range(repeat):
            t0 = time.perf_counter()
            optimal = dict(protect_run(cells, min_cell=K).status)
            times["optimal"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            greedy = protect_greedy(cells.table, min_cell=K, unpublished=unpublished, fixed=fixed)
            times["greedy"].append(time.perf_counter() - t0)
        policy = run_policy(plan.spec, frame, DisclosurePolicy(K))
        analyses = {a.name: run_analysis(a, frame, policy)[0] for a in plan.spec.analyses}
        events = policy.cohort_events(len(frame), int((frame["event"] == 1).sum()))[0]  # as results.json
        cohort = {"n": len(frame), "events": events}
        doc = json.loads(json.dumps({"cohort": cohort, "analyses": analyses}, default=str))
        t0 = time.perf_counter()
        findings = list(derive_results(doc, min_cell=K))
        scan = time.perf_counter() - t0
    return {
        "persons": len(frame),
        "cells": len(cells.table.values),
        "optimal": (information_loss(cells.table, optimal), min(times["optimal"]), audit(cells, optimal)),
        "greedy": (information_loss(cells.table, greedy), min(times["greedy"]), audit(cells, greedy)),
        "scan": (scan, len(findings)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="120,1000,5000")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    print(f"tables: {', '.join(a['name'] for a in ANALYSES)}, subgroup table (k = {K})")
    head = (
        "persons  cells | optimal: extra cells (value)  s    audits | greedy: extra cells (value)  s    audits"
        " | greedy/optimal s | scan s  findings"
    )
    print(head)
    for size in (int(s) for s in args.sizes.split(",")):
        r = run(size, args.repeat)
        (lo, to, ao), (lg, tg, ag), (ts, nf) = r["optimal"], r["greedy"], r["scan"]  # type: ignore[misc]
        print(
            f"{r['persons']:>7} {r['cells']:>6} | {lo[0]:>13} ({lo[1]:>5}) {to:6.2f}  {'pass' if ao else 'FAIL'}"
            f"  | {lg[0]:>12} ({lg[1]:>5}) {tg:6.2f}  {'pass' if ag else 'FAIL'}"
            f"  | {tg / to:16.2f} | {ts:6.2f}  {nf:>8}",
            flush=True,
        )


if __name__ == "__main__":
    main()
