"""Scale-out benchmark: one study on a Parquet lake, run by DuckDB and by Spark, stage by stage.

    python bench/scale.py --persons 1000000                 # ~100M events; builds the lake on first use
    python bench/scale.py --persons 20000 --engines spark   # a quick look at one engine

The lake is the synthetic heart-failure registry (structured only: ~108 events per person)
written with ``regent registry synth --format parquet``.  The study is the survival template
(cohort, four window features, Table 1, Kaplan-Meier, Cox) pointed at the lake.  Each engine runs
in its own child process (``--worker``) so that its wall time and peak memory are its own:

* per stage (open = session start + lake opened + study compiled; cohort; features; analyses;
  report), the wall time and the peak resident memory of the process tree (Python, and for Spark
  its JVM), sampled every 0.1 s;
* for Spark, per stage, what its event log says the stage's jobs did: input bytes, shuffle bytes
  written and read, spill, and task time (the sum over tasks of executor run time and CPU time).

Then the parent checks that both engines produced the same analysis matrix (the frame, exactly)
and the same results.json (to 1e-9, the registry's path aside), prints a table and the ratio of
Spark's time to DuckDB's per stage, and prints the 100M-person cluster plan that docs/scale.md
records, computed from the measured per-stage costs (``plan_100m``).  ``--json FILE`` keeps the
measurements.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path(os.environ.get("REGENT_BENCH_DIR", Path(tempfile.gettempdir()) / "regent-bench"))


# --- the child: one engine, one study ------------------------------------------------------------
class Sampler:
    """Peak resident memory of this process and its children, per stage label."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.stage = "open"
        self.peak: dict[str, int] = {}
        self.marks: list[tuple[str, float]] = [("open", time.time())]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        total = 0
        for p in [self.proc, *self.proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:  # a child that just ended
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._rss()
            self.peak[self.stage] = max(self.peak.get(self.stage, 0), rss)
            time.sleep(0.1)

    def mark(self, stage: str) -> None:
        if stage != self.stage:
            rss = self._rss()
            self.peak[self.stage] = max(self.peak.get(self.stage, 0), rss)
            self.stage = stage
            self.marks.append((stage, time.time()))

    def stop(self) -> dict[str, dict[str, float]]:
        self.mark("end")
        self._stop.set()
        self._thread.join()
        out: dict[str, dict[str, float]] = {}
        for (stage, t0), (_, t1) in zip(self.marks, self.marks[1:], strict=False):
            entry = out.setdefault(stage, {"seconds": 0.0, "peak_rss_mb": 0.0, "start": t0})
            entry["seconds"] += t1 - t0
            entry["peak_rss_mb"] = max(entry["peak_rss_mb"], self.peak.get(stage, 0) / 2**20)
        return out


def _stage_of(label: str) -> str:
    if label.startswith("analysis"):
        return "analyses"
    if label.startswith("model"):
        return "models"
    return label.split(":")[0]


def worker(engine: str, lake: Path, study: Path, out: Path) -> dict[str, Any]:
    from toolkit.study.engine import EngineSpec
    from toolkit.study.runner import run_study

    sampler = Sampler()
    eventlog = out / "eventlog"
    if engine == "spark":
        from toolkit.cohort.spark import local_spark

        eventlog.mkdir(parents=True, exist_ok=True)
        local_spark(
            "regent-bench-scale",
            conf={
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": eventlog.as_uri(),
                "spark.eventLog.compress": "false",  # plain JSON lines, read back below
                "spark.eventLog.rolling.enabled": "false",
                "spark.driver.memory": os.environ.get("REGENT_BENCH_DRIVER_MEMORY", "6g"),
            },
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = run_study(
            study,
            out=out / "run",
            registry=lake,
            use_cache=False,
            progress=lambda label: sampler.mark(_stage_of(label)),
            engine=EngineSpec(engine),  # type: ignore[arg-type]
        )
    stages = sampler.stop()
    run.frame.to_parquet(out / "frame.parquet")
    result = {
        "engine": engine,
        "stages": stages,
        "cohort_rows": len(run.frame),
        "matrix_bytes": int(run.frame.memory_usage(deep=True).sum()),
    }
    if engine == "spark":
        result["spark"] = spark_costs(eventlog, stages)
    return result


def spark_costs(eventlog: Path, stages: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per study stage, the sums over Spark tasks from the event log (jobs assigned by submission time)."""
    bounds = sorted((v["start"] * 1000, k) for k, v in stages.items())
    job_stage: dict[int, str] = {}
    stage_job: dict[int, int] = {}
    costs: dict[str, dict[str, float]] = {}
    keys = ("input_mb", "shuffle_write_mb", "shuffle_read_mb", "spill_disk_mb", "task_seconds", "cpu_seconds")
    for path in sorted(
        p for p in eventlog.rglob("*") if p.is_file() and p.name.startswith(("events_", "local-"))
    ):
        for line in path.read_text().splitlines():
            ev = json.loads(line)
            kind = ev.get("Event")
            if kind == "SparkListenerJobStart":
                at = ev["Submission Time"]
                label = next((k for t, k in reversed(bounds) if t <= at), "open")
                job_stage[ev["Job ID"]] = label
                for sid in ev.get("Stage IDs", []):
                    stage_job[sid] = ev["Job ID"]
            elif kind == "SparkListenerTaskEnd" and ev.get("Task Metrics"):
                label = job_stage.get(stage_job.get(ev["Stage ID"], -1), "open")
                m = ev["Task Metrics"]
                c = costs.setdefault(label, dict.fromkeys(keys, 0.0))
                sr = m.get("Shuffle Read Metrics", {})
                c["input_mb"] += m.get("Input Metrics", {}).get("Bytes Read", 0) / 2**20
                c["shuffle_write_mb"] += (
                    m.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0) / 2**20
                )
                c["shuffle_read_mb"] += (
                    sr.get("Remote Bytes Read", 0) + sr.get("Local Bytes Read", 0)
                ) / 2**20
                c["spill_disk_mb"] += m.get("Disk Bytes Spilled", 0) / 2**20
                c["task_seconds"] += m.get("Executor Run Time", 0) / 1000
                c["cpu_seconds"] += m.get("Executor CPU Time", 0) / 1e9
    return costs


# --- the parent: build, run both, compare, plan ----------------------------------------------------
def build_lake(persons: int, seed: int) -> tuple[Path, float]:
    from toolkit.registry.synth.heart_failure import SynthConfig, synthesize

    lake = CACHE / f"scale-hf-p{persons}-seed{seed}-lake"
    if (lake / "manifest.json").is_file():
        return lake, 0.0
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    synthesize(lake, SynthConfig(persons, 3, seed, notes=False, images=False), format="parquet")
    return lake, time.perf_counter() - t0


def study_folder(where: Path) -> Path:
    from toolkit.study.new import new_study

    study = where / "scale_survival"
    if not study.exists():
        new_study("scale_survival", template="survival", directory=where)
    return study


def run_engine(engine: str, lake: Path, study: Path, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        engine,
        "--lake",
        str(lake),
        "--study",
        str(study),
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"{engine} failed (exit {done.returncode})")
    return json.loads((out / "measures.json").read_text())


def compare(outs: dict[str, Path]) -> dict[str, Any]:
    import pandas as pd

    sys.path.insert(0, str(ROOT / "tests" / "study"))
    from test_spark_engine import differences

    frames = {e: pd.read_parquet(p / "frame.parquet") for e, p in outs.items()}
    docs = {e: json.loads((p / "run" / "results.json").read_text()) for e, p in outs.items()}
    for d in docs.values():
        d["registry"].pop("source")
    (a, fa), (b, fb) = frames.items()
    pd.testing.assert_frame_equal(fa, fb)
    diff = differences(docs[a], docs[b])
    return {"frames_equal": True, "results_differences": diff}


#: The stages that are Spark jobs over the lake (open is a fixed start-up cost, not scaled).
SCALED = ("cohort", "features")


def plan_100m(persons: int, spark: dict[str, Any], duck: dict[str, Any] | None) -> dict[str, Any]:
    """The 100M-person plan from the measured per-stage Spark costs, scaled linearly in persons.

    Assumptions (stated in docs/scale.md): every cost here is a scan, filter, sort or join over
    per-person rows, so it grows with the rows (linear; sort-merge adds a log factor, which the
    margin covers); a cluster task does the work a local task did at the same rate per core;
    partitions of ~128 MB of shuffle data; executors of 4 cores and 16 GB; a 30-minute target
    per stage.  The driver's share is the analysis matrix: its rows grow with the cohort, and
    the driver memory per row is what DuckDB's run needed above its start (``duck``).
    """
    factor = 100_000_000 / persons
    stages = {}
    for stage in SCALED:
        c = spark["spark"].get(stage)
        if c is None:
            continue
        shuffle_gb = max(c["shuffle_write_mb"], c["shuffle_read_mb"]) * factor / 1024
        core_hours = c["task_seconds"] * factor / 3600
        cores = max(4, math.ceil(core_hours * 3600 / (30 * 60) / 4) * 4)
        stages[stage] = {
            "input_gb": round(c["input_mb"] * factor / 1024, 1),
            "shuffle_gb": round(shuffle_gb, 1),
            "spill_gb": round(c["spill_disk_mb"] * factor / 1024, 1),
            "partitions": max(200, math.ceil(shuffle_gb * 1024 / 128)),
            "core_hours": round(core_hours, 1),
            "cores_for_30_min": cores,
            "executors_4c_16g": cores // 4,
        }
    rows = spark["cohort_rows"] * factor
    per_row = spark["matrix_bytes"] / max(spark["cohort_rows"], 1)
    plan: dict[str, Any] = {
        "factor": factor,
        "stages": stages,
        "analysis_matrix_rows": int(rows),
        "analysis_matrix_gb": round(rows * per_row / 2**30, 1),
        "bytes_per_row": round(per_row, 1),
    }
    if duck is not None:
        base = duck["stages"]["open"]["peak_rss_mb"]
        peak = max(v["peak_rss_mb"] for v in duck["stages"].values())
        driver_per_row = (peak - base) * 2**20 / max(duck["cohort_rows"], 1)
        plan["driver_bytes_per_row"] = round(driver_per_row, 1)
        plan["driver_gb_at_100m"] = round(rows * driver_per_row / 2**30, 1)
    return plan


def table(results: dict[str, dict[str, Any]]) -> str:
    engines = list(results)
    order = ["open", "cohort", "features", "analyses", "models", "report"]
    lines = [
        "| stage | " + " | ".join(f"{e} s | {e} peak MB" for e in engines) + " | spark/duckdb |",
        "|---" * (2 * len(engines) + 2) + "|",
    ]
    for stage in order:
        cells = []
        for e in engines:
            s = results[e]["stages"].get(stage)
            cells += [f"{s['seconds']:.1f}", f"{s['peak_rss_mb']:.0f}"] if s else ["", ""]
        ratio = ""
        if {"spark", "duckdb"} <= set(engines):
            a, b = results["duckdb"]["stages"].get(stage), results["spark"]["stages"].get(stage)
            if a and b and a["seconds"] > 0:
                ratio = f"{b['seconds'] / a['seconds']:.1f}x"
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--engines", default="duckdb,spark")
    ap.add_argument("--json", type=Path, help="write every measurement here")
    ap.add_argument("--plan-from", type=Path, help="print the 100M plan from a --json file of an earlier run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--lake", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--study", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plan_from:
        saved = json.loads(args.plan_from.read_text())
        engines = saved["engines"]
        print(table(engines))
        print(json.dumps(plan_100m(saved["persons"], engines["spark"], engines.get("duckdb")), indent=2))
        return
    if args.worker:
        measures = worker(args.worker, args.lake, args.study, args.out)
        (args.out / "measures.json").write_text(json.dumps(measures, indent=2))
        return
    lake, build_s = build_lake(args.persons, args.seed)
    manifest = json.loads((lake / "manifest.json").read_text())
    events = manifest["tables"]["events"]["rows"]
    print(
        f"lake {lake}: {args.persons:,} persons, {events:,} events"
        + (f" (built in {build_s:.0f} s)" if build_s else "")
    )
    work = CACHE / f"scale-run-p{args.persons}"
    study = study_folder(work)
    results, outs = {}, {}
    for engine in args.engines.split(","):
        outs[engine] = work / engine
        t0 = time.perf_counter()
        results[engine] = run_engine(engine, lake, study, outs[engine])
        print(f"{engine}: {time.perf_counter() - t0:.0f} s in all")
    print(table(results))
    report: dict[str, Any] = {
        "persons": args.persons,
        "events": events,
        "build_seconds": build_s,
        "engines": results,
    }
    if len(outs) == 2:
        report["comparison"] = compare(outs)
        same = not report["comparison"]["results_differences"]
        print(f"analysis matrix identical: yes; results.json equal to 1e-9: {'yes' if same else 'NO'}")
        for d in report["comparison"]["results_differences"][:10]:
            print("  ", d)
    if "spark" in results:
        for stage, c in results["spark"]["spark"].items():
            print(f"spark {stage}: " + ", ".join(f"{k} {v:.1f}" for k, v in c.items()))
        report["plan_100m"] = plan_100m(args.persons, results["spark"], results.get("duckdb"))
        print(json.dumps(report["plan_100m"], indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
