"""The privacy commands end to end: federated run over site registries, refusal as a clean
error naming site and round, de-identification, and the output scan's exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.federated.conftest import REPO, make_study


def regent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={"PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin"},
    )


def test_federated_run_writes_results_and_a_refusal_is_a_clean_error(
    site_registries: dict[str, Path], pooled_registry: Path, tmp_path: Path
) -> None:
    study = make_study(
        tmp_path / "study",
        pooled_registry,
        [{"name": "km", "type": "kaplan_meier", "by": "sex", "times": [365]}],
    )
    sites = ",".join(str(p) for p in site_registries.values())
    r = regent("federated", "run", str(study), "--sites", sites, "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert (
        "3 sites (binned mode, inprocess)" in r.stdout and "rounds" in r.stdout and "bytes sent" in r.stdout
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["federated"]["sites"] == sorted(site_registries) and "km" in results["analyses"]
    r = regent(
        "federated",
        "run",
        str(study),
        "--sites",
        sites,
        "--out",
        str(tmp_path / "x"),
        "--min-persons",
        "100000",
    )
    assert (
        r.returncode == 2 and "round 1: site SITE01 refused hello" in r.stderr and "min_persons" in r.stderr
    )
    assert "Traceback" not in r.stderr and not (tmp_path / "x").exists()
    r = regent("privacy", "scan", str(tmp_path / "out"))
    assert r.returncode == 0 and "no count between 1 and 9" in r.stdout


def test_deidentify_and_scan_commands(pooled_registry: Path, tmp_path: Path) -> None:
    r = regent(
        "registry",
        "deidentify",
        str(pooled_registry),
        str(tmp_path / "d.duckdb"),
        "--key-file",
        str(tmp_path / "k.hex"),
    )
    assert r.returncode == 0, r.stderr
    assert (
        "de-identified 1800 persons" in r.stdout
        and "k-anonymity on ['sex', 'birth_year', 'site_id']" in r.stdout
    )
    assert json.loads((tmp_path / "d.deid.json").read_text())["persons"] == 1800
    leaky = tmp_path / "leaky"
    leaky.mkdir()
    (leaky / "results.json").write_text(json.dumps({"cohort": {"n": 4}}))
    r = regent("privacy", "scan", str(leaky))
    assert r.returncode == 1 and "results.json: cohort.n: 4" in r.stdout


def test_federated_node_needs_its_registry(tmp_path: Path) -> None:
    r = regent(
        "federated", "node", str(tmp_path / "missing.duckdb"), "--site", "A", "--superlink", "127.0.0.1:9"
    )
    assert r.returncode == 2 and "missing.duckdb: registry file not found" in r.stderr
