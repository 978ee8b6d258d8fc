"""results.json of the three templates is what it was before the study engine became typed stages.

``tests/data/results_before/<study>.json`` are the files the pre-refactor engine wrote (untracked
runs on the studies' own registries).  A run now must hold every key and value those files hold,
exactly (floats bit for bit); it may add keys (new fields, and MLflow's keys when tracked).
Left out of the comparison: ``code_version`` and ``mlflow_run_id`` (they name the run, not its
results) and ``spec_hash``, whose definition changed once: it now hashes the spec without its
default values, so that a key added to the schema later leaves unchanged studies' hashes alone.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BEFORE = REPO / "tests" / "data" / "results_before"
IGNORED = ("code_version", "mlflow_run_id", "spec_hash")


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """Where ``after`` does not hold ``before`` (extra keys in ``after`` are allowed)."""
    if isinstance(before, dict):
        if not isinstance(after, dict):
            return [f"{path}: was an object"]
        out: list[str] = []
        for k, v in before.items():
            if k not in after:
                out.append(f"{path}.{k}: missing")
            else:
                out += differences(v, after[k], f"{path}.{k}")
        return out
    if isinstance(before, list):
        if not isinstance(after, list) or len(after) != len(before):
            return [f"{path}: list length {len(before)} -> {len(after) if isinstance(after, list) else '-'}"]
        return [
            d
            for i, (b, a) in enumerate(zip(before, after, strict=True))
            for d in differences(b, a, f"{path}[{i}]")
        ]
    if type(before) is not type(after) or before != after:
        return [f"{path}: {before!r} -> {after!r}"]
    return []


def assert_unchanged(study: str, after: dict[str, Any]) -> None:
    before = json.loads((BEFORE / f"{study}.json").read_text())
    for key in IGNORED:
        before.pop(key, None)
    diff = differences(before, after)
    assert not diff, f"{study}: results.json changed:\n" + "\n".join(diff[:20])


def test_the_comparison_itself_finds_changes() -> None:
    before = {"a": 1, "b": [1.0, {"c": None}], "d": "x"}
    assert differences(before, {**before, "new": 2}) == []
    assert differences(before, {**before, "a": 1.0}) == [".a: 1 -> 1.0"]  # 1 and 1.0 differ on disk
    assert differences(before, {"a": 1, "b": [1.0], "d": "x"}) == [".b: list length 2 -> 1"]
    assert differences(before, {"a": 1, "b": [1.0, {}], "d": "x"}) == [".b[1].c: missing"]


def test_gbsg2_results_are_unchanged(gbsg2_run) -> None:  # type: ignore[no-untyped-def]
    run, _, _ = gbsg2_run
    assert_unchanged("gbsg2_recurrence", run.results.to_json())


def test_competing_risks_results_are_unchanged(tmp_path: Path, data_dir: Path) -> None:
    from toolkit.study.runner import run_study

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_study(REPO / "studies" / "competing_risks", out=tmp_path / "out")
    assert_unchanged("competing_risks", json.loads((tmp_path / "out" / "results.json").read_text()))
