"""Window features at the cohort's index times: Regent (SQL on DuckDB) vs pandas vs MEDS-Tab 0.2.0.

    python bench/features.py                     # 100,000 persons; MEDS-Tab on 10,000
    python bench/features.py --persons 20000 --meds-persons 2000   # a quick run

Features: every code (the synthetic HF registry's 30-odd codes) in windows 30d, 365d and all
prior, with present, count, sum, min and max, at the index times of the hf_mortality cohort.

* **Regent**: ``generated_features`` -- one SQL query with conditional aggregation, then a sparse
  matrix (DuckDB, 2 cores).
* **pandas**: the same features from the events already in memory (loading not timed), with
  vectorised merge/filter/groupby per window -- the baseline a data scientist writes by hand.
* **MEDS-Tab** (PyPI ``meds-tab==0.2.0``, installed by this script into its own virtual
  environment, never a project dependency): the registry's events exported to MEDS
  (``toolkit.registry.meds.export_meds`` where present), ``meds-tab-describe`` then
  ``meds-tab-tabularize-time-series`` with the index times as its label times (so it aggregates
  only there), one worker.  Timed: describe + tabularize (not the export).  Values compared where
  both really compute them: per-window code counts (MEDS-Tab 0.2.0 leaves every value
  aggregation empty; its windows are half-open, (t - w, t], Regent's closed, [t - w, t]).

Every ratio is measured in this run, on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.cohort.run import run_cohort  # noqa: E402
from toolkit.cohort.spec import load_cohort  # noqa: E402
from toolkit.features.windows import FeatureSpec, generated_features  # noqa: E402
from toolkit.registry import Registry  # noqa: E402
from toolkit.registry.synth.heart_failure import SynthConfig, synthesize  # noqa: E402

WINDOWS = {"m30d_0d": -30, "m365d_0d": -365, "all_0d": None}
MEDS_WINDOWS = {"m30d_0d": "30d", "m365d_0d": "365d", "all_0d": "full"}
AGGS = ["present", "count", "sum", "min", "max"]
SPEC = FeatureSpec.model_validate(
    {
        "generators": [
            {"prefixes": [""], "windows": [["-30d", "0d"], ["-365d", "0d"], ["all", "0d"]], "aggs": AGGS}
        ]
    }
)


def say(msg: str) -> None:
    print(msg, flush=True)


def registry(cache: Path, persons: int) -> Path:
    path = cache / f"hf-{persons}.duckdb"
    if not path.exists():
        t = time.perf_counter()
        synthesize(path, SynthConfig(persons, 3, 0, notes=False, images=False))
        say(f"built {path} in {time.perf_counter() - t:.0f} s")
    return path


def regent(reg: Registry, keys: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    t = time.perf_counter()
    gen = generated_features(keys, reg.con, SPEC)
    elapsed = time.perf_counter() - t
    coo = gen.matrix.tocoo()
    # per feature column: (code slug, window, aggregation), then indexed by the stored entries
    meta = pd.DataFrame([n.split("__") for n in gen.names], columns=["slug", "window", "agg"])
    long = pd.DataFrame({"row_id": coo.row, "value": coo.data})
    for c in meta.columns:
        long[c] = pd.Categorical.from_codes(
            pd.Categorical(meta[c]).codes[coo.col], categories=pd.Categorical(meta[c]).categories
        ).astype(str)
    return elapsed, long


def pandas_baseline(events: pd.DataFrame, keys: pd.DataFrame) -> tuple[float, pd.DataFrame]:
    from toolkit.features.windows import slug

    t = time.perf_counter()
    k = keys.assign(row_id=np.arange(len(keys)))
    e = events.merge(k, on="person_id")
    days = (e["time"] - e["index_time"]).dt.total_seconds().to_numpy() / 86400.0
    parts = []
    for label, lo in WINDOWS.items():
        inside = days <= 0 if lo is None else (days <= 0) & (days >= lo)
        g = e[inside].groupby(["row_id", "code"], observed=True)["numeric_value"]
        agg = g.agg(["size", "sum", "min", "max", "count"]).reset_index()
        agg["window"] = label
        parts.append(agg)
    out = pd.concat(parts, ignore_index=True)
    elapsed = time.perf_counter() - t
    out["slug"] = out["code"].astype(str).map(slug)
    return elapsed, out


def compare(reg_long: pd.DataFrame, pd_long: pd.DataFrame) -> dict[str, object]:
    """Every (row, code, window) cell of every aggregation, Regent vs pandas."""
    wide = reg_long.pivot_table(
        index=["row_id", "slug", "window"], columns="agg", values="value", aggfunc="first"
    )
    ref = pd_long.set_index(["row_id", "slug", "window"]).drop(columns=["code"]).add_prefix("pd_")
    j = ref.join(wide, how="outer")
    n = j["pd_size"].fillna(0)
    out: dict[str, object] = {
        "count": bool((n == j["count"].fillna(0)).all()),
        "present": bool(((n > 0) == (j["present"].fillna(0) > 0)).all()),
    }
    has = j["pd_count"].fillna(0) > 0  # sum/min/max exist only where a value was recorded
    for a in ("sum", "min", "max"):
        x, y = j.loc[has, f"pd_{a}"].to_numpy(float), j.loc[has, a].to_numpy(float)
        out[a] = bool(np.allclose(x, y, rtol=1e-9) and j.loc[~has, a].isna().all())
    out["cells"] = len(j)
    return out


# --- MEDS-Tab ---------------------------------------------------------------------------------
def meds_venv(cache: Path) -> Path:
    venv = cache / "meds-tab"
    if not (venv / "bin" / "meds-tab-tabularize-time-series").exists():
        say(f"installing meds-tab==0.2.0 into {venv} (own virtual environment)")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "meds-tab==0.2.0"], check=True)
    return venv


def export_for_meds(reg_path: Path, keys: pd.DataFrame, out: Path, shard: int = 10_000) -> None:
    """MEDS data shards (data/train/<i>.parquet) and label shards with the same layout."""
    shutil.rmtree(out, ignore_errors=True)
    persons = np.sort(keys["person_id"].unique())
    with Registry(reg_path) as reg:
        reg.con.register("_p", pd.DataFrame({"person_id": persons}))
        events = reg.sql(
            "SELECT e.person_id AS subject_id, CAST(e.time AS TIMESTAMP) AS time, CAST(e.code AS VARCHAR) AS code, "
            "CAST(e.numeric_value AS FLOAT) AS numeric_value FROM events e SEMI JOIN _p ON e.person_id = _p.person_id "
            "ORDER BY subject_id, time, code"
        )
    labels = keys.rename(columns={"person_id": "subject_id", "index_time": "prediction_time"}).assign(
        boolean_value=False
    )
    for i in range(0, len(persons), shard):
        ids = persons[i : i + shard]
        for root, frame in ((out / "data" / "train", events), (out / "labels" / "train", labels)):
            root.mkdir(parents=True, exist_ok=True)
            part = frame[frame["subject_id"].isin(ids)].sort_values(["subject_id", frame.columns[1]])
            part.to_parquet(root / f"{i // shard}.parquet", index=False)


def run_meds_tab(venv: Path, work: Path) -> tuple[float, dict[str, float]]:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "POLARS_MAX_THREADS": "2"}
    common = [f"input_dir={work / 'data'}", f"output_dir={work / 'out'}"]
    steps = {
        "describe": [str(venv / "bin" / "meds-tab-describe"), *common],
        "tabularize": [
            str(venv / "bin" / "meds-tab-tabularize-time-series"),
            *common,
            f"input_label_dir={work / 'labels'}",
            "tabularization.window_sizes=[30d,365d,full]",
            "tabularization.aggs=[code/count,value/sum,value/min,value/max]",
            "tabularization.min_code_inclusion_count=1",
            "do_overwrite=True",
        ],
    }
    times: dict[str, float] = {}
    for name, cmd in steps.items():
        t = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=work)
        times[name] = time.perf_counter() - t
        if r.returncode != 0:
            raise RuntimeError(f"meds-tab {name} failed:\n{r.stderr[-3000:]}")
    return sum(times.values()), times


def read_meds_counts(venv: Path, work: Path) -> pd.DataFrame:
    """MEDS-Tab's code/count matrices as (shard row, code, window, count), via its own loader."""
    script = f"""
import json, numpy as np
from pathlib import Path
from MEDS_tabular_automl.describe_codes import get_feature_columns
from MEDS_tabular_automl.utils import get_feature_names, load_matrix
cols = get_feature_names("code/count", get_feature_columns("{work / "out" / "metadata" / "codes.parquet"}"))
out = []
for fp in sorted(Path("{work / "out" / "tabularize"}").rglob("count.npz")):
    if fp.parent.name != "code":
        continue
    m = load_matrix(fp).tocoo()
    shard, window = fp.parts[-4], fp.parts[-3]
    out.append(dict(shard=int(shard), window=window, row=m.row.tolist(), col=m.col.tolist(), data=m.data.tolist(),
                    nrows=int(m.shape[0]), ncols=int(m.shape[1])))
print(json.dumps(dict(cols=cols, mats=out)))
"""
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, check=True
    )
    doc = json.loads(r.stdout)
    codes = [c.removesuffix("/code") for c in doc["cols"]]
    rows = []
    for m in doc["mats"]:
        frame = pd.DataFrame({"row": m["row"], "code": np.array(codes)[m["col"]], "count": m["data"]})
        rows.append(frame.assign(shard=m["shard"], window=m["window"]))
    return pd.concat(rows, ignore_index=True)


def meds_agreement(
    meds: pd.DataFrame, reg_long: pd.DataFrame, keys: pd.DataFrame, shard: int = 10_000
) -> dict:
    from toolkit.features.windows import slug

    persons = np.sort(keys["person_id"].unique())
    labels = keys.reset_index(drop=True).assign(row_id=np.arange(len(keys)))
    labels["shard"] = np.searchsorted(persons, labels["person_id"].to_numpy()) // shard
    labels = labels.sort_values(["shard", "person_id", "index_time"], kind="stable")
    labels["row"] = labels.groupby("shard").cumcount()
    m = meds.merge(labels[["shard", "row", "row_id"]], on=["shard", "row"])
    m["slug"] = m["code"].map(slug)
    inverse = {v: k for k, v in MEDS_WINDOWS.items()}
    m["window"] = m["window"].map(inverse)
    ours = reg_long[reg_long["agg"] == "count"].rename(columns={"value": "regent"})
    j = m.merge(ours, on=["row_id", "slug", "window"], how="outer")
    same = (j["count"].fillna(0) == j["regent"].fillna(0)).to_numpy()
    by_window = {w: round(float(same[(j["window"] == w).to_numpy()].mean()), 4) for w in WINDOWS}
    ns = j["code"].fillna(j["slug"]).astype(str).str.split(r"[:_]").str[0].str.upper()
    by_namespace = {n: round(float(same[(ns == n).to_numpy()].mean()), 4) for n in sorted(ns.unique())}
    return {
        "cells": len(j),
        "equal_fraction": round(float(same.mean()), 4),
        "by_window": by_window,
        "by_namespace": by_namespace,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=100_000)
    ap.add_argument("--meds-persons", type=int, default=10_000)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "regent-bench")
    ap.add_argument("--skip-meds", action="store_true")
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    path = registry(args.cache, args.persons)
    with Registry(path) as reg:
        keys = run_cohort(load_cohort(REPO / "studies/hf_mortality/cohort.yaml"), reg).cohort[
            ["person_id", "index_time"]
        ]
        n_events = reg.count("events")
        say(f"registry: {args.persons:,} persons, {n_events:,} events; cohort: {len(keys):,} index rows")
        t_reg, reg_long = regent(reg, keys)
        events = reg.sql("SELECT person_id, time, code, numeric_value FROM events")
    events["code"] = events["code"].astype("category")
    t_pd, pd_long = pandas_baseline(events, keys)
    agree = compare(reg_long, pd_long)
    say(f"Regent SQL   {t_reg:8.2f} s   ({reg_long['slug'].nunique()} codes x 3 windows x 5 aggregations)")
    say(f"pandas       {t_pd:8.2f} s   ratio pandas/Regent = {t_pd / t_reg:.1f}x")
    say(f"values agree with pandas: {agree}")
    if args.skip_meds:
        return
    venv = meds_venv(args.cache)
    sub = np.sort(keys["person_id"].unique())[: args.meds_persons]
    sub_keys = (
        keys[keys["person_id"].isin(sub)].sort_values(["person_id", "index_time"]).reset_index(drop=True)
    )
    work = args.cache / f"meds-{args.persons}-{args.meds_persons}"
    export_for_meds(path, sub_keys, work)
    with Registry(path) as reg:
        t_reg_sub, reg_sub = regent(reg, sub_keys)
        sub_events = reg.sql(
            f"SELECT COUNT(*) FROM events WHERE person_id IN (SELECT unnest({sub.tolist()}))"
        ).iloc[0, 0]
    t_meds, parts = run_meds_tab(venv, work)
    meds_agree = meds_agreement(read_meds_counts(venv, work), reg_sub, sub_keys)
    say(f"MEDS-Tab     {t_meds:8.2f} s   on {len(sub):,} persons / {sub_events:,} events ({parts})")
    say(
        f"Regent SQL   {t_reg_sub:8.2f} s   on the same {len(sub):,} persons: MEDS-Tab/Regent = {t_meds / t_reg_sub:.0f}x"
    )
    est = t_meds * args.persons / len(sub)
    say(
        f"MEDS-Tab at {args.persons:,} persons, scaled linearly from {len(sub):,}: ~{est:.0f} s "
        f"-> MEDS-Tab/Regent ~{est / t_reg:.0f}x (estimate, not measured)"
    )
    say(f"code counts agree with MEDS-Tab: {meds_agree}")


if __name__ == "__main__":
    main()
