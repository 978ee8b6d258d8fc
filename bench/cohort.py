"""Cohort engine benchmark: Regent (DuckDB) vs a straightforward pandas implementation vs ACES.

    python bench/cohort.py --persons 1000000            # builds the registry on first use
    python bench/cohort.py --persons 100000 --skip-aces
    python bench/cohort.py --meds PATH [--trigger CODE]  # a MEDS dataset another tool wrote

Each engine runs in its own child process, so wall time and peak resident memory are its own
(VmHWM of the child's own address space: ru_maxrss would also count the parent's memory at fork).  Prints the figures and the ratios, and checks that the engines agree:

* Regent vs pandas on the full heart-failure cohort (four criteria, one outcome, one competing
  event): identical persons, index times, times and events.
* Regent vs ACES (PyPI ``es-aces``, installed by this script into its own virtual environment,
  never a project dependency) on the closest equivalent task: first heart-failure admission,
  prior-death exclusion, 1-year mortality label; labels compared where both define them.

With ``--meds PATH`` the data is a MEDS dataset Regent did not write (e.g. one made by
meds-testing-helpers' ``build_sample_MEDS_dataset``): Regent imports it (timed), then Regent and
ACES run the same task on it (first ``--trigger`` code, default the most frequent timed code; no
death before; death within one year), ACES on the foreign files themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("REGENT_BENCH_DIR", Path(tempfile.gettempdir()) / "regent-bench"))

COHORT_YAML = """
name: bench_hf
entry: {codes: ["ICD10:I50*"], occurrence: first, prior_observation: 365d}
inclusion:
  - {name: adult, age: {min: 18}}
  - {name: NT-proBNP at admission, occurs: {codes: ["LOINC:33762-6"], window: [-1d, 0d]}}
exclusion:
  - {name: prior heart transplant, occurs: {codes: ["SNOMED:32413006", "ICD10:Z94.1"], window: [all, 0d]}}
  - {name: dialysis in the prior year, occurs: {codes: ["ICD10:Z99.2"], window: [-365d, 0d]}}
outcome:
  name: cardiovascular death
  codes: [DEATH]
  text: {prefix: ["ICD10:I"]}
  competing: [{name: other death, codes: [DEATH], text: {not_prefix: ["ICD10:I"]}}]
  censor: {events: {codes: ["SNOMED:32413006"]}}
  horizons: [365d]
"""

ACES_TASK_YAML = """
name: aces_like
entry: {codes: ["ICD10:I50*"], occurrence: first}
outcome:
  name: death
  codes: [DEATH]
  washout: true
  time_at_risk: {start: 0d, end: end_of_observation}
  horizons: [365d]
"""

REGENT_CHILD = """
import json, resource, sys, time
import duckdb
from toolkit.cohort.run import run_cohort
from toolkit.cohort.spec import cohort_from_dict
from toolkit.registry import Registry
import yaml
spec = cohort_from_dict(yaml.safe_load(sys.argv[2]))
t0 = time.perf_counter()
with Registry(sys.argv[1]) as reg:
    reg.con.execute("SET threads = 2")
    reg.con.execute("SET memory_limit = '3500MB'")
    res = run_cohort(spec, reg)
elapsed = time.perf_counter() - t0
res.cohort[["person_id", "index_time", "time", "event"] + [c for c in res.cohort if c.startswith("label_")]].to_parquet(sys.argv[3])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": elapsed, "peak_mib": hwm / 1024, "n": int(res.n)}))
"""

PANDAS_CHILD = r"""
import json, resource, sys, time
import duckdb, numpy as np, pandas as pd, pyarrow as pa
t0 = time.perf_counter()
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("SET enable_progress_bar = false")
def table(sql):
    t = con.sql(sql).to_arrow_table()
    if isinstance(t, pa.RecordBatchReader):
        t = t.read_all()
    cols = [c.dictionary_encode() if pa.types.is_string(c.type) else c for c in t.columns]
    return pa.table(cols, names=t.column_names).to_pandas()
ev = table("SELECT person_id, time, code, numeric_value, text_value FROM events")
person = table("SELECT person_id, birth_date FROM person")
obs = table("SELECT person_id, start_time, end_time FROM observation_period")
code = ev["code"].astype(str)
# entry: first heart-failure code per person
hf = ev.loc[code.str.startswith("ICD10:I50"), ["person_id", "time"]]
entry = hf.sort_values(["person_id", "time"]).drop_duplicates("person_id").rename(columns={"time": "index_time"})
# index inside an observation period (the latest-ending period that contains it)
c = entry.merge(obs, on="person_id")
c = c[(c.index_time >= c.start_time) & (c.index_time <= c.end_time)]
c = c.groupby(["person_id", "index_time"], as_index=False).agg(obs_start=("start_time", "min"), obs_end=("end_time", "max"))
# prior observation >= 365 days
c = c[(c.index_time - c.obs_start).dt.total_seconds() / 86400 >= 365]
# age at index >= 18 (whole years)
c = c.merge(person, on="person_id")
bd = pd.to_datetime(c.birth_date)
age = c.index_time.dt.year - bd.dt.year - ((c.index_time.dt.month < bd.dt.month) | ((c.index_time.dt.month == bd.dt.month) & (c.index_time.dt.day < bd.dt.day))).astype(int)
c = c[age >= 18]
def any_in_window(codes, lo_days, hi_days):
    e = ev.loc[code.isin(codes), ["person_id", "time"]].merge(c[["person_id", "index_time"]], on="person_id")
    ok = e.time <= e.index_time + pd.Timedelta(days=hi_days)
    if lo_days is not None:
        ok &= e.time >= e.index_time + pd.Timedelta(days=lo_days)
    return set(e.loc[ok, "person_id"])
c = c[c.person_id.isin(any_in_window(["LOINC:33762-6"], -1, 0))]
c = c[~c.person_id.isin(any_in_window(["SNOMED:32413006", "ICD10:Z94.1"], None, 0))]
c = c[~c.person_id.isin(any_in_window(["ICD10:Z99.2"], -365, 0))]
# washout: cardiovascular death before index
deaths = ev.loc[code == "DEATH", ["person_id", "time", "text_value"]]
deaths = deaths.assign(cv=deaths.text_value.astype(str).str.startswith("ICD10:I"))
d = deaths.merge(c[["person_id", "index_time"]], on="person_id")
c = c[~c.person_id.isin(set(d.loc[(d.time < d.index_time) & d.cv, "person_id"]))]
def first_after(frame):
    f = frame.merge(c[["person_id", "index_time", "obs_end"]], on="person_id")
    f = f[(f.time >= f.index_time) & (f.time <= f.obs_end)]
    return f.groupby("person_id").time.min()
t_out = first_after(deaths.loc[deaths.cv, ["person_id", "time"]])
t_comp = first_after(deaths.loc[~deaths.cv, ["person_id", "time"]])
t_cens = first_after(ev.loc[code == "SNOMED:32413006", ["person_id", "time"]])
c = c.set_index("person_id")
end = pd.concat([c.obs_end, t_cens.reindex(c.index)], axis=1).min(axis=1)
t1 = t_out.reindex(c.index).where(lambda s: s <= end)
t2 = t_comp.reindex(c.index).where(lambda s: s <= end)
tev = pd.concat([t1, t2], axis=1).min(axis=1)
event = np.where(t1.notna() & (t1 == tev), 1, np.where(t2.notna() & (t2 == tev), 2, 0))
when = tev.fillna(end)
out = pd.DataFrame({"person_id": c.index, "index_time": c.index_time.values,
                    "time": ((when - c.index_time).dt.total_seconds() / 86400).values, "event": event})
elapsed = time.perf_counter() - t0
out.sort_values("person_id").to_parquet(sys.argv[2])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": elapsed, "peak_mib": hwm / 1024, "n": int(len(out))}))
"""


def child(
    code: str, *args: str, python: str = sys.executable, env: dict[str, str] | None = None
) -> dict[str, float]:
    out = subprocess.run(
        [python, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_registry(persons: int) -> Path:
    path = CACHE / f"hf-{persons}.duckdb"
    if not path.exists():
        print(f"building a synthetic registry of {persons:,} persons (once) ...", flush=True)
        t0 = time.perf_counter()
        code = textwrap.dedent(f"""
            import inspect
            from toolkit.registry.synth.heart_failure import SynthConfig, synthesize
            kw = {{k: False for k in ("notes", "images") if k in inspect.signature(SynthConfig).parameters}}
            synthesize({str(path)!r}, SynthConfig({persons}, 3, 1, **kw))
        """)
        subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def registry_size(path: Path) -> tuple[int, int]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    n = con.execute("SELECT (SELECT COUNT(*) FROM person), (SELECT COUNT(*) FROM events)").fetchone()
    con.close()
    assert n is not None
    return int(n[0]), int(n[1])


IMPORT_CHILD = """
import json, sys, time
from toolkit.registry.meds import import_meds
t0 = time.perf_counter()
import_meds(sys.argv[1], sys.argv[2])
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mib": hwm / 1024}))
"""


def foreign_meds(root: Path, trigger: str | None) -> None:
    """Import a foreign MEDS dataset, then Regent and ACES on the same task, labels compared."""
    import duckdb
    from aces_compare import ACES_VERSION, compare_labels, ensure_aces, foreign_config, run_aces

    data = root / "data"
    files = f"'{data}/**/*.parquet'"
    if trigger is None:
        row = (
            duckdb.connect()
            .execute(
                f"SELECT code, COUNT(*) n FROM read_parquet({files}) WHERE time IS NOT NULL "
                "AND code NOT IN ('MEDS_BIRTH', 'MEDS_DEATH') GROUP BY code ORDER BY n DESC, code LIMIT 1"
            )
            .fetchone()
        )
        assert row is not None, "no timed codes"
        trigger = str(row[0])
    n = (
        duckdb.connect()
        .execute(f"SELECT COUNT(DISTINCT subject_id), COUNT(*) FROM read_parquet({files})")
        .fetchone()
    )
    assert n is not None
    print(f"MEDS dataset {root}: {n[0]:,} subjects, {n[1]:,} rows; trigger {trigger!r}")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        reg = t / "foreign.duckdb"
        imp = child(IMPORT_CHILD, str(root), str(reg))
        print(f"Regent import-meds: {imp['seconds']:.1f} s, peak {imp['peak_mib']:.0f} MiB")
        task = ACES_TASK_YAML.replace('codes: ["ICD10:I50*"]', f"codes: [{json.dumps(trigger)}]")
        regent = child(REGENT_CHILD, str(reg), task, str(t / "regent_task.parquet"))
        venv = ensure_aces(CACHE)
        aces, labels = run_aces(venv, data, foreign_config(trigger), t)
        print(
            f"Regent cohort (DuckDB, 2 threads): {regent['seconds']:.1f} s, peak {regent['peak_mib']:.0f} MiB"
        )
        print(
            f"ACES {ACES_VERSION} (sharded MEDS):       {aces['seconds']:.1f} s, peak {aces['peak_mib']:.0f} MiB"
        )
        print(
            f"  ratio ACES/Regent time: {aces['seconds'] / regent['seconds']:.1f}x "
            f"(with Regent's import: {aces['seconds'] / (regent['seconds'] + imp['seconds']):.1f}x)"
        )
        print("  " + compare_labels(t / "regent_task.parquet", labels))


def compare_regent_pandas(a: Path, b: Path) -> str:
    import pandas as pd

    x = pd.read_parquet(a).sort_values("person_id").reset_index(drop=True)
    y = pd.read_parquet(b).sort_values("person_id").reset_index(drop=True)
    if len(x) != len(y) or not (x["person_id"].to_numpy() == y["person_id"].to_numpy()).all():
        return f"DIFFERENT persons: regent {len(x):,} vs pandas {len(y):,}"
    same_event = (x["event"].astype(int).to_numpy() == y["event"].astype(int).to_numpy()).all()
    max_dt = float((x["time"] - y["time"]).abs().max())
    ok = same_event and max_dt < 1e-6
    return f"{'identical' if ok else 'DIFFERENT'} ({len(x):,} persons; events equal: {same_event}; max |dt| {max_dt:.2g} days)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--skip-aces", action="store_true")
    ap.add_argument("--meds", type=Path, help="a MEDS dataset another tool wrote (import + ACES comparison)")
    ap.add_argument("--trigger", help="--meds: the entry code, as written in the dataset")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    if args.meds is not None:
        foreign_meds(args.meds, args.trigger)
        return
    reg = ensure_registry(args.persons)
    n_persons, n_events = registry_size(reg)
    print(f"registry: {n_persons:,} persons, {n_events:,} events ({reg})")
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        regent = child(REGENT_CHILD, str(reg), COHORT_YAML, str(t / "regent.parquet"))
        print(
            f"Regent (DuckDB, 2 threads): {regent['seconds']:.1f} s, peak {regent['peak_mib']:.0f} MiB, "
            f"cohort {regent['n']:,}"
        )
        if not args.skip_pandas:
            pdres = child(PANDAS_CHILD, str(reg), str(t / "pandas.parquet"))
            print(f"pandas baseline:            {pdres['seconds']:.1f} s, peak {pdres['peak_mib']:.0f} MiB")
            print(
                f"  ratio pandas/Regent time: {pdres['seconds'] / regent['seconds']:.1f}x; memory "
                f"{pdres['peak_mib'] / regent['peak_mib']:.1f}x; agreement: "
                f"{compare_regent_pandas(t / 'regent.parquet', t / 'pandas.parquet')}"
            )
        if not args.skip_aces:
            from aces_compare import run_aces_comparison

            run_aces_comparison(reg, t, ACES_TASK_YAML, child, REGENT_CHILD)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
