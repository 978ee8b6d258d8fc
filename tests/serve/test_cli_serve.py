"""``regent serve`` as deployed: a settings file, two workers, metrics and jti cache shared."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.serve.helpers import API_KEY, GBSG2_INPUTS, ISS, Keys, hook_request
from toolkit.cli.demo import free_port
from toolkit.cli.main import app
from toolkit.errors import SpecError


def test_auth_off_is_refused_on_a_public_host(gbsg2_bundle: Path) -> None:
    result = CliRunner().invoke(
        app, ["serve", "--agents", str(gbsg2_bundle.parent), "--auth", "off", "--host", "0.0.0.0"]
    )
    assert isinstance(result.exception, SpecError) and "loopback" in str(result.exception)


@pytest.mark.slow
def test_regent_serve_with_two_workers(gbsg2_bundle: Path, tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    (tmp_path / "issuers.yaml").write_text(
        yaml.safe_dump({"issuers": [{"iss": ISS, "jwks_file": "jwks.json"}]})
    )
    (tmp_path / "serve.yaml").write_text(
        yaml.safe_dump(
            {
                "issuers_file": "issuers.yaml",
                "api_keys": [{"name": "t", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}],
                "audit_path": "audit.sqlite",
            }
        )
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGENT_", "PROMETHEUS_"))}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from toolkit.cli.main import main; main()",
            "serve",
            "--agents",
            str(gbsg2_bundle.parent),
            "--settings",
            str(tmp_path / "serve.yaml"),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        aud = f"{url}/cds-services/gbsg2-recurrence"
        assert httpx.post(aud, json=hook_request()).status_code == 401  # auth on by default
        headers = keys.bearer(aud)
        assert httpx.post(aud, json=hook_request(), headers=headers).status_code == 200
        n = 20
        for _ in range(n):  # new connections: spread over both workers
            r = httpx.post(
                f"{url}/agents/gbsg2-recurrence/predict",
                json={"inputs": GBSG2_INPUTS},
                headers={"X-API-Key": API_KEY, "Connection": "close"},
            )
            assert r.status_code == 200
            # a token replayed on any worker is refused (the jti cache is in the shared SQLite file)
            assert (
                httpx.post(aud, json=hook_request(), headers={**headers, "Connection": "close"}).status_code
                == 401
            )
        metrics = httpx.get(f"{url}/metrics").text
        line = next(
            ln
            for ln in metrics.splitlines()
            if ln.startswith("regent_requests_total{") and 'endpoint="/agents/{agent_id}/predict"' in ln
        )
        assert float(line.rsplit(" ", 1)[1]) == n  # aggregated over both workers
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    from toolkit.serve.audit import read_records, verify_audit

    result = verify_audit(tmp_path / "audit.sqlite")
    assert result.ok and result.records == 2 * n + 2
    refused = [r for r in read_records(tmp_path / "audit.sqlite") if r["kind"] == "refused"]
    # the call without a token and the n replays, each with its reason and no token
    assert sorted({r["reason"] for r in refused}) == ["no-token", "replayed-jti"] and len(refused) == n + 1
    # refused tokens are logged by 'regent serve' (its logging config), with the reason only
    log_text = (tmp_path / "serve.log").read_text()
    assert (
        "authentication refused: no-token" in log_text and "authentication refused: replayed-jti" in log_text
    )
    assert headers["Authorization"].split()[1] not in log_text and "Traceback" not in log_text
