"""``regent agent monitor`` without a registry: drift, rates and feedback; errors that name the file."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from toolkit.agents.load import Agent
from toolkit.cli.main import app
from toolkit.monitor.calls import MonitorError, call_fields
from toolkit.serve.audit import AuditLog, inputs_digest


def _draw(agent: Agent, rng: np.random.Generator, **fixed: float) -> dict[str, object]:
    """One patient drawn from the bundle's reference histograms (``fixed`` inputs set as given)."""
    assert agent.reference is not None
    out: dict[str, object] = {}
    for ref in agent.reference.inputs:
        spec = agent.contract.input(ref.name)
        j = int(rng.choice(len(ref.bins), p=ref.shares))
        b = ref.bins[j]
        if b.levels is not None:
            out[ref.name] = str(rng.choice(b.levels))
            continue
        # an open outer bin: as wide as its neighbour (the reference never releases the extremes)
        inner = [x for c in ref.bins for x in (c.lower, c.upper) if x is not None]
        width = (max(inner) - min(inner)) / max(len(ref.bins) - 2, 1) if inner else 1.0
        lo = b.lower if b.lower is not None else (b.upper or 0.0) - width
        hi = b.upper if b.upper is not None else (b.lower or 0.0) + width
        valid = spec.range or (-np.inf, np.inf)
        value = float(np.clip(rng.uniform(lo, hi), valid[0], valid[1]))
        if spec.type == "integer":
            value = float(min(max(np.ceil(value), np.floor(lo) + 1), np.floor(hi)))
        out[ref.name] = value
    return {**out, **fixed}


def _audit(agent: Agent, path: Path, *, ages: np.ndarray, seed: int = 0) -> Path:
    log = AuditLog(path)
    rng = np.random.default_rng(seed)
    for age in ages:
        p = agent.predict(_draw(agent, rng, **({} if np.isnan(age) else {"age_years": float(age)})))
        log.append(
            {
                "kind": "rest",
                "call": "predict",
                "agent": agent.name,
                "version": agent.version,
                "bundle_sha256": agent.bundle_hash,
                "inputs_sha256": inputs_digest(p.inputs),
                "risk": p.risk,
                "status": 200,
                **call_fields(agent.reference, p.inputs, p.flags),
            }
        )
    log.close()
    return path


def _monitor(bundle: Path, audit: Path, out: Path, *extra: str) -> object:
    args = ["agent", "monitor", str(bundle), "--audit", str(audit), "--out", str(out), "--no-mlflow", *extra]
    return CliRunner().invoke(app, args)


def test_drifted_calls_alert_and_check_exits_1_stable_calls_pass(gbsg2_bundle: Path, tmp_path: Path) -> None:
    agent = Agent.load(gbsg2_bundle)
    rng = np.random.default_rng(3)
    old = _audit(agent, tmp_path / "old.sqlite", ages=rng.integers(75, 81, 300))
    result = _monitor(gbsg2_bundle, old, tmp_path / "out-old", "--check")
    assert result.exit_code == 1 and "ALERT psi (age_years)" in result.output
    report = json.loads((tmp_path / "out-old" / "monitoring.json").read_text())
    assert report["alerts"] and report["windows"][0]["performance"] is None  # no registry: no outcomes
    assert "Active alerts" in (tmp_path / "out-old" / "monitoring.html").read_text()
    # every input drawn from the reference histograms: no drift
    stable = _audit(agent, tmp_path / "stable.sqlite", ages=np.full(300, np.nan), seed=4)
    result = _monitor(gbsg2_bundle, stable, tmp_path / "out-stable", "--check", "--window", "2w")
    assert result.exit_code == 0 and "no active alerts" in result.output, result.output


def test_errors_name_the_file_and_what_to_do(gbsg2_bundle: Path, tmp_path: Path) -> None:
    agent = Agent.load(gbsg2_bundle)
    audit = _audit(agent, tmp_path / "a.sqlite", ages=np.full(5, 50))
    with pytest.raises(MonitorError, match="--registry and --link go together"):
        raise _monitor(gbsg2_bundle, audit, tmp_path / "o", "--registry", str(audit)).exception  # type: ignore[attr-defined,misc]
    empty = AuditLog(tmp_path / "empty.sqlite")
    empty.close()
    with pytest.raises(MonitorError, match="no calls of agent gbsg2-recurrence version"):
        raise _monitor(gbsg2_bundle, tmp_path / "empty.sqlite", tmp_path / "o").exception  # type: ignore[attr-defined,misc]
    old = tmp_path / "old-bundle"
    shutil.copytree(gbsg2_bundle, old)
    (old / "reference.json").unlink()
    (old / "SHA256SUMS").write_text(
        "".join(
            line + "\n"
            for line in (old / "SHA256SUMS").read_text().splitlines()
            if "reference.json" not in line
        )
    )
    with pytest.raises(MonitorError, match=r"no reference\.json"):
        raise _monitor(old, audit, tmp_path / "o").exception  # type: ignore[attr-defined,misc]
    db = sqlite3.connect(audit)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("UPDATE audit SET body = replace(body, '\"rest\"', '\"mcp\"') WHERE seq = 2")
    db.commit()
    db.close()
    with pytest.raises(MonitorError, match="chain is broken"):
        raise _monitor(gbsg2_bundle, audit, tmp_path / "o").exception  # type: ignore[attr-defined,misc]
