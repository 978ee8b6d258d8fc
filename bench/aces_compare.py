"""The ACES side of bench/cohort.py: install ACES in its own venv, export MEDS, run, compare labels.

ACES (PyPI ``es-aces``) is never a project dependency: it lives in ``$REGENT_BENCH_DIR/aces``.
The task: first heart-failure code, no death before it, label = death within 365 days (Regent's
MEDS export writes the registry's ``DEATH`` as the standard ``MEDS_DEATH``).  ACES has
no notion of censoring (a person followed for 100 days without dying is labelled 0), so labels are
compared only where Regent's label is defined (the person was followed to the horizon or died).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ACES_VERSION = "0.7.3"

ACES_CONFIG = """
predicates:
  hf:
    code: {regex: "^ICD10//I50"}
  death:
    code: MEDS_DEATH
trigger: hf
windows:
  prior:
    start: NULL
    end: trigger
    start_inclusive: True
    end_inclusive: False
    has:
      hf: (None, 0)
      death: (None, 0)
  target:
    start: trigger
    end: start + 365d
    start_inclusive: True
    end_inclusive: True
    label: death
    index_timestamp: start
"""

# runs ACES in a child and reports the peak RSS of ACES's own processes
PEAK_WRAPPER = """
import resource, subprocess, sys, time, json
t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0,
                  "peak_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def ensure_aces(cache: Path) -> Path:
    venv = cache / "aces"
    cli = venv / "bin" / "aces-cli"
    if not cli.exists():
        print(f"installing es-aces=={ACES_VERSION} into {venv} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"es-aces=={ACES_VERSION}"], check=True)
    return venv


def foreign_config(trigger: str) -> str:
    """The same task on any MEDS dataset: first ``trigger`` code, no death before, death within 1 year."""
    return ACES_CONFIG.replace('code: {regex: "^ICD10//I50"}', f"code: {json.dumps(trigger)}")


def run_aces(venv: Path, data: Path, config: str, tmp: Path) -> tuple[dict[str, Any], Any]:
    """ACES in sharded mode on ``data`` (a MEDS data/ folder): its timing and its labels."""
    import pandas as pd

    cohort_dir = tmp / "aces_cohorts"
    cohort_dir.mkdir()
    (cohort_dir / "task.yaml").write_text(config)
    shards = subprocess.run(
        [str(venv / "bin" / "expand_shards"), str(data)], capture_output=True, text=True, check=True
    ).stdout.strip()
    cmd = [
        str(venv / "bin" / "aces-cli"),
        "-m",
        "data=sharded",
        "data.standard=meds",
        f"data.root={data}",
        f"data.shard={shards}",
        f"cohort_dir={cohort_dir}",
        "cohort_name=task",
    ]
    res = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, *cmd],
        capture_output=True,
        text=True,
        env={**os.environ, "POLARS_MAX_THREADS": "2"},
    )
    aces = json.loads(res.stdout.strip().splitlines()[-1])
    if aces["rc"] != 0:
        raise SystemExit(f"ACES failed:\n{res.stderr[-3000:]}")
    files = sorted(p for p in (cohort_dir / "task").rglob("*.parquet"))
    labels = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    # ACES writes the MEDS label schema: the label is boolean_value (older versions: label)
    labels = labels.rename(
        columns={"subject_id": "person_id", "prediction_time": "index_time", "boolean_value": "label"}
    )
    return aces, labels


def compare_labels(regent_labels: Path, aces: Any) -> str:
    import pandas as pd

    r = pd.read_parquet(regent_labels)
    merged = r.merge(
        aces[["person_id", "index_time", "label"]],
        on=["person_id", "index_time"],
        how="outer",
        indicator=True,
    )
    both = merged[merged["_merge"] == "both"]
    defined = both[both["label_365d"].notna()]
    agree = (
        (defined["label_365d"].astype(int) == defined["label"].astype(int)).mean()
        if len(defined)
        else float("nan")
    )
    return (
        f"persons: Regent {len(r):,}, ACES {len(aces):,}, in both {len(both):,}; "
        f"labels agree on {agree:.4%} of the {len(defined):,} where Regent's label is defined "
        f"({int(both['label_365d'].isna().sum()):,} censored before 1 year: ACES labels them 0)"
    )


def run_aces_comparison(
    registry: Path, tmp: Path, regent_task_yaml: str, child: Callable[..., dict[str, Any]], regent_child: str
) -> None:
    cache = registry.parent
    venv = ensure_aces(cache)
    meds = tmp / "meds"
    t0 = time.perf_counter()
    # in a child, so the export's memory never inflates this process (or the peaks of later children)
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"from toolkit.registry.meds import export_meds; export_meds({str(registry)!r}, {str(meds)!r})",
        ],
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    print(f"MEDS export (not timed against either engine): {time.perf_counter() - t0:.1f} s")
    aces, labels = run_aces(venv, meds / "data", ACES_CONFIG, tmp)
    regent = child(regent_child, str(registry), regent_task_yaml, str(tmp / "regent_task.parquet"))
    print(f"ACES {ACES_VERSION} (sharded MEDS):  {aces['seconds']:.1f} s, peak {aces['peak_mib']:.0f} MiB")
    print(f"Regent, same task:          {regent['seconds']:.1f} s, peak {regent['peak_mib']:.0f} MiB")
    print(f"  ratio ACES/Regent time: {aces['seconds'] / regent['seconds']:.1f}x")
    print("  " + compare_labels(tmp / "regent_task.parquet", labels))
