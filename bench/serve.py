"""Serving speed: ``regent serve`` vs ``mlflow models serve`` on the hf-mortality agent, loopback.

Both servers run with one worker on the same machine and get the same single-patient requests
(synthetic patients drawn inside the model's training ranges, seeded):

1. fixed rate (default 100 requests/s for 20 s, open loop: latency is measured from each
   request's scheduled time, so a stalled server cannot hide queueing): p50, p99, achieved rate
   -- for Regent's REST predict (validation + explanation + audit + API-key auth), Regent's CDS
   Hooks call (FHIR mapping + card + a fresh ES384 JWT per call) and mlflow's /invocations;
2. throughput: closed loop with C concurrent clients for T seconds, requests/s.

Prints each figure and the ratios Regent / mlflow.  Usage::

    python bench/serve.py [--bundle dist/agents/hf-mortality-1.0.1] [--rate 100] [--seconds 20]

Without --bundle it builds the bundle the way ``regent demo`` does (under out/bench-serve).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import numpy as np
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
API_KEY = "bench-key"
ISS = "https://bench.example.org"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_bundle(work: Path) -> Path:
    from toolkit.cli.demo import run_demo

    result = run_demo(out=work / "out", mlruns=work / "mlruns", dist=work / "dist", say=lambda s: None)
    return Path(result["bundle"])


def patients(bundle: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """Synthetic patients inside the training ranges (1st-99th percentiles) of the bundle."""
    manifest = json.loads((bundle / "manifest.json").read_text())
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p: dict[str, Any] = {}
        for i in manifest["inputs"]:
            if i["type"] == "boolean":
                p[i["name"]] = bool(rng.integers(0, 2))
            elif i["type"] == "category":
                p[i["name"]] = str(rng.choice(i["levels"]))
            else:
                lo, hi = i.get("training_range") or i["range"]
                v = float(rng.uniform(lo, hi))
                p[i["name"]] = round(v) if i["type"] == "integer" else round(v, 2)
        out.append(p)
    return out


def cds_request(p: dict[str, Any]) -> dict[str, Any]:
    """The patient as a CDS Hooks patient-view request with FHIR prefetch (hf-mortality's mapping)."""
    today = time.strftime("%Y-%m-%d")
    loinc = {
        "nt_probnp": ("33762-6", "pg/mL"),
        "lvef": ("10230-1", "%"),
        "creatinine": ("2160-0", "mg/dL"),
        "sodium": ("2951-2", "mmol/L"),
        "sbp": ("8480-6", "mm[Hg]"),
        "hemoglobin": ("718-7", "g/dL"),
    }
    icd = {"diabetes": "E11.9", "ckd": "N18.3", "copd": "J44.9", "af": "I48.91"}
    obs = [
        {
            "resourceType": "Observation",
            "status": "final",
            "effectiveDateTime": today,
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "valueQuantity": {"value": p[k], "unit": unit, "code": unit},
        }
        for k, (code, unit) in loinc.items()
    ]
    cond = [
        {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"code": "active"}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": c}]},
        }
        for k, c in icd.items()
        if p[k]
    ]
    meds = (
        [
            {
                "resourceType": "MedicationStatement",
                "status": "active",
                "effectiveDateTime": today,
                "medicationCodeableConcept": {
                    "coding": [{"system": "http://www.whocc.no/atc", "code": "C07AB07"}]
                },
            }
        ]
        if p["beta_blocker"]
        else []
    )
    born = f"{int(time.strftime('%Y')) - int(p['age']) - 1}-01-01"

    def bundle(rs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in rs]}

    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/bench", "patientId": "bench"},
        "prefetch": {
            "patient": {
                "resourceType": "Patient",
                "id": "bench",
                "gender": "male" if p["sex"] == "M" else "female",
                "birthDate": born,
            },
            "observation": bundle(obs),
            "condition": bundle(cond),
            "medicationstatement": bundle(meds),
        },
    }


def start(
    cmd: list[str], url: str, env: dict[str, str] | None = None, log: Path | None = None
) -> subprocess.Popen[bytes]:
    out = log.open("wb") if log else subprocess.DEVNULL
    # mlflow starts `uvicorn` by name: put this venv's bin folder first on PATH
    env = {**(env or os.environ), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {' '.join(cmd[:3])}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit(f"server did not start: {' '.join(cmd[:3])}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


Request = Callable[[int], tuple[str, dict[str, Any], dict[str, str]]]


async def fixed_rate(make: Request, rate: float, seconds: float) -> dict[str, float]:
    """Open loop at ``rate``/s: latency from the scheduled send time."""
    n = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        t0 = time.perf_counter() + 0.2

        async def one(i: int) -> None:
            nonlocal errors
            url, body, headers = make(i)
            due = t0 + i / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                r = await client.post(url, json=body, headers=headers)
                errors += r.status_code != 200
            except httpx.HTTPError:  # dropped or timed out by an overloaded server: an error
                errors += 1
            lat.append(time.perf_counter() - due)

        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
        "rate": n / wall,
        "errors": errors,
    }


async def closed_loop(make: Request, concurrency: int, seconds: float) -> dict[str, float]:
    done = 0
    errors = 0
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=30) as client:

        async def worker(w: int) -> None:
            nonlocal done, errors
            i = w
            while time.perf_counter() < end:
                url, body, headers = make(i)
                try:
                    r = await client.post(url, json=body, headers=headers)
                    errors += r.status_code != 200
                    done += r.status_code == 200
                except httpx.HTTPError:
                    errors += 1
                i += concurrency

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"rps": done / wall, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--throughput-seconds", type=float, default=15.0)
    ap.add_argument("--patients", type=int, default=500)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="regent-bench-"))
    bundle = args.bundle.resolve() if args.bundle else build_bundle(REPO / "out" / "bench-serve")
    agents = work / "agents"
    agents.mkdir()
    (agents / bundle.name).symlink_to(bundle)
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1")
    (work / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    (work / "serve.yaml").write_text(
        yaml.safe_dump(
            {
                "issuers": [{"iss": ISS, "jwks_file": str(work / "jwks.json")}],
                "api_keys": [{"name": "bench", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}],
                "audit_path": str(work / "audit.sqlite"),
            }
        )
    )
    people = patients(bundle, args.patients, seed=20261128)
    rp, mp = free_port(), free_port()
    regent_url, mlflow_url = f"http://127.0.0.1:{rp}", f"http://127.0.0.1:{mp}"
    features = json.loads((bundle / "manifest.json").read_text())["model"]["features"]

    def rest(i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        return (
            f"{regent_url}/agents/hf-mortality/predict",
            {"inputs": people[i % len(people)]},
            {"X-API-Key": API_KEY},
        )

    n_cds = int(args.rate * args.seconds)
    cds_aud = f"{regent_url}/cds-services/hf-mortality"
    now = int(time.time())
    tokens = [  # signed before the run: the client's signing cost is not the server's latency
        jwt.encode(
            {"iss": ISS, "aud": cds_aud, "iat": now, "exp": now + 590, "jti": str(uuid.uuid4())},
            key,
            algorithm="ES384",
            headers={"kid": "k1"},
        )
        for _ in range(n_cds)
    ]
    cds_bodies = [cds_request(people[i % len(people)]) for i in range(min(n_cds, len(people)))]

    def cds(i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        return cds_aud, cds_bodies[i % len(cds_bodies)], {"Authorization": f"Bearer {tokens[i]}"}

    def mlflow(i: int) -> tuple[str, dict[str, Any], dict[str, str]]:
        p = people[i % len(people)]
        row = {f: (float(p[f]) if isinstance(p[f], bool) else p[f]) for f in features}
        return f"{mlflow_url}/invocations", {"dataframe_records": [row]}, {}

    results: dict[str, dict[str, float]] = {}
    print(f"work folder (server logs): {work}", file=sys.stderr)
    env = {**os.environ, "REGENT_SETTINGS": str(work / "serve.yaml")}
    proc = start(
        [str(BIN / "regent"), "serve", "--agents", str(agents), "--port", str(rp), "--workers", "1"],
        f"{regent_url}/readyz",
        env,
        work / "regent.log",
    )
    try:
        asyncio.run(fixed_rate(rest, args.rate, 2))  # warm-up
        print("regent: REST at fixed rate", file=sys.stderr)
        results["regent REST predict"] = asyncio.run(fixed_rate(rest, args.rate, args.seconds))
        print("regent: CDS Hooks at fixed rate", file=sys.stderr)
        results["regent CDS Hooks"] = asyncio.run(fixed_rate(cds, args.rate, args.seconds))
        print("regent: throughput", file=sys.stderr)
        results["regent REST predict"].update(
            asyncio.run(closed_loop(rest, args.concurrency, args.throughput_seconds))
        )
    finally:
        stop(proc)
    proc = start(
        [
            str(BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            str(bundle / "model"),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(mp),
            "-w",
            "1",
        ],
        f"{mlflow_url}/ping",
        log=work / "mlflow.log",
    )
    try:
        asyncio.run(fixed_rate(mlflow, min(args.rate, 20), 2))  # warm-up
        print("mlflow: fixed rate", file=sys.stderr)
        results["mlflow models serve"] = asyncio.run(fixed_rate(mlflow, args.rate, args.seconds))
        print("mlflow: throughput", file=sys.stderr)
        results["mlflow models serve"].update(
            asyncio.run(closed_loop(mlflow, args.concurrency, args.throughput_seconds))
        )
    finally:
        stop(proc)

    print(
        f"hf-mortality {bundle.name}; {os.cpu_count()} cores; 1 worker each; {args.rate:g} req/s for "
        f"{args.seconds:g} s; throughput with {args.concurrency} concurrent clients for {args.throughput_seconds:g} s"
    )
    print(f"{'':22} {'p50 ms':>8} {'p99 ms':>8} {'rate/s':>8} {'errors':>6} {'max req/s':>10}")
    for name, r in results.items():
        rps = f"{r['rps']:10.0f}" if "rps" in r else f"{'':>10}"
        print(f"{name:22} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['rate']:8.1f} {int(r['errors']):6d} {rps}")
    reg, mlf = results["regent REST predict"], results["mlflow models serve"]
    print(
        f"ratio p50 mlflow/regent REST: {mlf['p50_ms'] / reg['p50_ms']:.1f}x; "
        f"p99: {mlf['p99_ms'] / reg['p99_ms']:.1f}x; throughput regent/mlflow: {reg['rps'] / mlf['rps']:.1f}x"
    )
    print(
        f"targets: REST p99 <= 20 ms at {args.rate:g}/s: {'met' if reg['p99_ms'] <= 20 else 'MISSED'}; "
        f"throughput >= 3x mlflow: {'met' if reg['rps'] >= 3 * mlf['rps'] else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
