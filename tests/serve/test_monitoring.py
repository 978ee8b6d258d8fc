"""The server's side of monitoring: gauges on /metrics (one worker and several), card notices."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.serve.helpers import hook_request, running
from toolkit.agents.bundle import write_sums
from toolkit.agents.load import Agent
from toolkit.monitor.report import Alert, Check, Feedback, MonitoringReport, WindowReport
from toolkit.serve.app import create_app
from toolkit.serve.metrics import Metrics
from toolkit.serve.monitoring import MonitoringCollector, MonitoringStatus
from toolkit.serve.settings import Settings

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def report_for(agent: Agent, *, calibration_alert: bool, bundle: str | None = None) -> MonitoringReport:
    status = "alert" if calibration_alert else "ok"
    window = WindowReport(
        start=T0,
        end=T0 + dt.timedelta(days=30),
        calls=400,
        predictions=380,
        refused_missing=20,
        distinct=380,
        rates={},
        psi={"age_years": 0.31},
        ks={},
        mean_risk=0.3,
        feedback=Feedback(
            cards=380, replies=None, accepted=None, overridden=None, accept_rate=None, override_rate=None
        ),
        performance=None,
        checks=[
            Check(check="psi", subject="age_years", value=0.31, threshold="<= 0.2", status="alert"),
            Check(
                check="o_e",
                subject="outcomes",
                value=1.5,
                lower=1.3,
                upper=1.7,
                threshold="[0.8, 1.25]",
                status=status,
            ),
        ],
    )
    alerts = [
        Alert(check="psi", subject="age_years", since=T0, window_start=T0, value=0.31, threshold="<= 0.2")
    ]
    if calibration_alert:
        alerts.append(
            Alert(
                check="o_e", subject="outcomes", since=T0, window_start=T0, value=1.5, threshold="[0.8, 1.25]"
            )
        )
    return MonitoringReport(
        generated_at=T0 + dt.timedelta(days=400),
        agent=agent.name,
        version=agent.version,
        bundle_sha256=bundle or agent.bundle_hash,
        registered_model=None,
        model_version=None,
        mlflow_run_id=None,
        horizon_days=365.0,
        window_days=30.0,
        as_of=None,
        min_cell=10,
        thresholds={},
        clinical_owner="Dr. Lin <lin@example.org>",
        audit_records=400,
        linkage=None,
        windows=[window],
        alerts=alerts,
    )


def _write(report: MonitoringReport, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "monitoring.json").write_text(json.dumps(report.to_json()))


@pytest.fixture(scope="module")
def noticing(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The gbsg2 bundle whose contract asks cards to carry calibration alerts."""
    dst = tmp_path_factory.mktemp("notice") / "agents" / gbsg2_bundle.name
    shutil.copytree(gbsg2_bundle, dst)
    contract = yaml.safe_load((dst / "agent.yaml").read_text())
    contract["monitoring"] = {"card_notice": True}
    (dst / "agent.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    write_sums(dst)
    return dst


@pytest.fixture()
def server(noticing: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    settings = Settings(agents_dir=noticing.parent, auth="off", monitoring_dir=tmp_path / "monitoring")
    with running(create_app(settings)) as url:
        yield url, tmp_path / "monitoring"


def test_cards_carry_an_active_calibration_alert_and_metrics_show_every_check(
    server: tuple[str, Path], noticing: Path
) -> None:
    url, folder = server
    agent = Agent.load(noticing)
    service = f"{url}/cds-services/{agent.name}"
    assert "Monitoring:" not in httpx.post(service, json=hook_request()).json()["cards"][0]["detail"]
    _write(report_for(agent, calibration_alert=False), folder / agent.name)
    assert "Monitoring:" not in httpx.post(service, json=hook_request()).json()["cards"][0]["detail"]
    metrics = httpx.get(f"{url}/metrics").text
    assert 'regent_monitor_alert{agent="gbsg2-recurrence",check="psi",subject="age_years",version=' in metrics
    assert (
        f'regent_monitor_alerts_active{{agent="gbsg2-recurrence",version="{agent.version}"}} 1.0' in metrics
    )
    _write(report_for(agent, calibration_alert=True), folder / agent.name)  # the next run of the job
    detail = httpx.post(service, json=hook_request()).json()["cards"][0]["detail"]
    assert "Monitoring: since 2026-01-01" in detail and "Dr. Lin" in detail
    assert 'check="o_e",subject="outcomes"' in httpx.get(f"{url}/metrics").text


def test_a_report_about_another_bundle_or_a_broken_file_is_not_used(
    server: tuple[str, Path], noticing: Path
) -> None:
    url, folder = server
    agent = Agent.load(noticing)
    _write(report_for(agent, calibration_alert=True, bundle="0" * 64), folder / "old-version")
    (folder / "broken").mkdir()
    (folder / "broken" / "monitoring.json").write_text("{not json")
    detail = httpx.post(f"{url}/cds-services/{agent.name}", json=hook_request()).json()["cards"][0]["detail"]
    assert "Monitoring:" not in detail
    assert "regent_monitor_alert{" not in httpx.get(f"{url}/metrics").text


def test_gauges_are_in_every_worker_s_answer(
    noticing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prom"))
    (tmp_path / "prom").mkdir()
    agent = Agent.load(noticing)
    _write(report_for(agent, calibration_alert=True), tmp_path / "mon")
    metrics = Metrics()
    metrics.add_collector(MonitoringCollector(MonitoringStatus(tmp_path / "mon", {agent.name: agent})))
    text = metrics.render().decode()
    assert 'regent_monitor_alert{agent="gbsg2-recurrence",check="o_e",subject="outcomes"' in text
    assert "regent_monitor_report_timestamp_seconds" in text
