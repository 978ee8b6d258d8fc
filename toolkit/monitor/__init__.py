"""Agents in service: input drift, calibration as outcomes accrue, alerts (docs/monitoring.md).

``regent agent monitor`` reads an agent bundle's reference distributions, the server's audit log
and, optionally, the registry with the hospital's link file, and writes a JSON and an HTML
report per window; the server exposes its alerts on ``/metrics`` and (if the contract asks) on
cards; :mod:`toolkit.tracking.monitoring` logs it to MLflow against the model version.

Layer: beside :mod:`toolkit.agents` (it reads bundles, not the server).
"""

from toolkit.monitor.calls import MonitorError, call_fields, patient_pseudonym, refused_fields
from toolkit.monitor.report import MonitoringReport, read_report

__all__ = [
    "MonitorError",
    "MonitoringReport",
    "call_fields",
    "monitor_bundle",
    "patient_pseudonym",
    "read_report",
    "refused_fields",
]


def __getattr__(name: str) -> object:
    if name == "monitor_bundle":  # the registry and evaluation stack load on first use
        from toolkit.monitor.run import monitor_bundle

        return monitor_bundle
    raise AttributeError(name)
