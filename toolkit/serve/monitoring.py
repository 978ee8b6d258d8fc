"""What the server shows of ``regent agent monitor``'s reports: gauges on /metrics, card notices.

With ``monitoring_dir`` set, the server reads ``<monitoring_dir>/monitoring.json`` and
``<monitoring_dir>/*/monitoring.json`` (the folders ``regent agent monitor --out`` wrote) when
they change.  A report counts for a loaded agent only when it is about that very bundle (same
bundle hash); the newest such report wins.  Gauges (all labelled ``agent`` and ``version``):

* ``regent_monitor_alert{check, subject}``: 1 while the check alerts in its latest judged window;
* ``regent_monitor_value{check, subject}``: the check's value in the latest window that judged it;
* ``regent_monitor_alerts_active``: how many checks alert;
* ``regent_monitor_report_timestamp_seconds``: when the report was made (stale reports show).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from toolkit.agents.load import Agent
from toolkit.monitor import MonitoringReport, read_report
from toolkit.monitor.calls import MonitorError

log = logging.getLogger("regent.serve")


class MonitoringStatus:
    """The latest monitoring report of each loaded agent (re-read when a file changes)."""

    def __init__(self, folder: Path | None, agents: Mapping[str, Agent]) -> None:
        self.folder = folder
        self.agents = agents
        self._lock = threading.Lock()
        self._seen: dict[Path, tuple[float, MonitoringReport | None]] = {}

    def _files(self) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            return []
        return [
            p
            for p in [self.folder / "monitoring.json", *self.folder.glob("*/monitoring.json")]
            if p.is_file()
        ]

    def reports(self) -> dict[str, MonitoringReport]:
        """Agent name -> the newest report about the loaded bundle of that agent."""
        out: dict[str, MonitoringReport] = {}
        with self._lock:
            for path in self._files():
                try:
                    mtime = path.stat().st_mtime
                except OSError:
                    continue
                cached = self._seen.get(path)
                if cached is None or cached[0] != mtime:
                    try:
                        cached = (mtime, read_report(path))
                    except MonitorError as exc:
                        log.warning("monitoring report not used: %s", exc)
                        cached = (mtime, None)
                    self._seen[path] = cached
                report = cached[1]
                if report is None:
                    continue
                agent = self.agents.get(report.agent)
                if agent is None or agent.bundle_hash != report.bundle_sha256:
                    continue
                current = out.get(report.agent)
                if current is None or report.generated_at > current.generated_at:
                    out[report.agent] = report
        return out

    def card_notice(self, agent: Agent) -> str | None:
        """The sentence a card carries while the agent is under a calibration alert (if asked)."""
        if self.folder is None or not agent.contract.monitoring.card_notice:
            return None
        report = self.reports().get(agent.name)
        if report is None or not report.calibration_alerts:
            return None
        since = min(a.since for a in report.calibration_alerts).date().isoformat()
        return (
            f"Monitoring: since {since}, this model's risks have not matched what happened to patients "
            f"(calibration alert); read the risk with caution. Clinical owner: {report.clinical_owner}."
        )


class MonitoringCollector(Collector):
    """Prometheus gauges from the monitoring reports (read at scrape time)."""

    def __init__(self, status: MonitoringStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[Any]:
        labels = ["agent", "version", "check", "subject"]
        alert = GaugeMetricFamily(
            "regent_monitor_alert", "1 while the check alerts in its latest judged window.", labels=labels
        )
        value = GaugeMetricFamily(
            "regent_monitor_value", "The check's value in its latest judged window.", labels=labels
        )
        active = GaugeMetricFamily(
            "regent_monitor_alerts_active", "Checks alerting now.", labels=["agent", "version"]
        )
        stamp = GaugeMetricFamily(
            "regent_monitor_report_timestamp_seconds",
            "When the monitoring report was made.",
            labels=["agent", "version"],
        )
        for name, report in sorted(self.status.reports().items()):
            latest: dict[tuple[str, str], Any] = {}
            for w in report.windows:
                for c in w.checks:
                    if c.status != "not judged":
                        latest[(c.check, c.subject)] = c
            for (check, subject), c in sorted(latest.items()):
                lv = [name, report.version, check, subject]
                alert.add_metric(lv, 1.0 if c.status == "alert" else 0.0)
                if c.value is not None:
                    value.add_metric(lv, float(c.value))
            active.add_metric([name, report.version], float(len(report.alerts)))
            stamp.add_metric([name, report.version], report.generated_at.timestamp())
        yield from (alert, value, active, stamp)
