"""``monitor_bundle``: an agent bundle, its audit log and (optionally) the registry -> a report.

1. Load the bundle (every hash verified) with its reference distributions and outcome definition.
2. Read the bundle's calls and the CDS feedback from the audit log.
3. With a registry and a link file: follow each linked prediction in the registry from its call
   time (:mod:`toolkit.monitor.outcomes`).
4. Cut the calls into windows and judge each (:mod:`toolkit.monitor.evaluate`); the active
   alerts are the checks alerting in the latest window that judged them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.agents.load import Agent
from toolkit.disclosure import DisclosurePolicy
from toolkit.monitor.calls import Calls, MonitorError, read_calls
from toolkit.monitor.evaluate import Settings, evaluate_windows
from toolkit.monitor.outcomes import follow_up, load_outcome, read_link, registry_as_of
from toolkit.monitor.report import Linkage, MonitoringReport, active_alerts
from toolkit.monitor.windows import parse_window, windows_over
from toolkit.registry.store import Registry


def _link_outcomes(
    agent: Agent,
    calls: Calls,
    registry: Path,
    link: Path,
    key: bytes | None,
    as_of: dt.datetime | None,
    policy: DisclosurePolicy,
) -> tuple[pd.DataFrame, Linkage, dt.datetime]:
    definition = load_outcome(agent.path)
    if definition is None:
        raise MonitorError(
            f"{agent.path}: the bundle has no outcome.json (packaged before monitoring); package it again"
        )
    links = read_link(link, key=key)
    preds = calls.predictions.copy()
    person = preds["patient_ref"].map(links)
    preds["link"] = np.where(
        preds["patient_ref"].isna(), "no_patient", np.where(person.isna(), "unlinked", "ok")
    )
    preds["time_fu"], preds["event_fu"] = np.nan, 0
    answered = (preds["link"] == "ok") & (preds["status"] == 200)
    with Registry(registry) as reg:
        cutoff = as_of or registry_as_of(reg)
        origins = pd.DataFrame({"person_id": person[answered], "origin": preds.loc[answered, "time"]})
        if len(origins):
            fu = follow_up(reg, origins, definition, as_of=cutoff)
            idx = preds.index[answered]
            preds.loc[idx, "time_fu"] = fu["time"].to_numpy()
            preds.loc[idx, "event_fu"] = fu["event"].to_numpy()
            preds.loc[idx, "link"] = fu["link"].to_numpy()
    answered_links = preds.loc[preds["status"] == 200, "link"]
    linkage = Linkage(
        **{
            name: policy.count(int((answered_links == name).sum()))
            for name in ("unlinked", "not_followed", "outcome_before_call", "no_patient")
        },
        linked=policy.count(int((answered_links == "ok").sum())),
    )
    return preds, linkage, cutoff


def monitor_bundle(
    bundle: Path | str,
    audit: Path | str,
    *,
    registry: Path | str | None = None,
    link: Path | str | None = None,
    audit_key: bytes | None = None,
    window: str | None = None,
    as_of: dt.datetime | None = None,
    bootstrap: int = 200,
    now: dt.datetime | None = None,
) -> MonitoringReport:
    """Monitor one agent bundle from its audit log (see the module docstring)."""
    agent = Agent.load(bundle)
    if agent.reference is None:
        raise MonitorError(
            f"{agent.path}: the bundle has no reference.json (packaged before monitoring); run the study "
            f"and package the agent again"
        )
    if (registry is None) != (link is None):
        raise MonitorError(
            "--registry and --link go together: outcomes need both the registry and the link file"
        )
    spec = agent.contract.monitoring
    length = parse_window(
        window or spec.window, source="--window" if window else "agent.yaml: monitoring.window"
    )
    calls = read_calls(audit, agent=agent.name, bundle_sha256=agent.bundle_hash)
    if calls.predictions.empty:
        found = ", ".join(f"version {v}: {n} calls" for v, n in sorted(calls.versions.items())) or "none"
        raise MonitorError(
            f"{audit}: no calls of agent {agent.name} version {agent.version} (this bundle) among "
            f"{calls.records} audit records; calls of this agent found: {found}"
        )
    policy = DisclosurePolicy(min_cell=agent.reference.min_cell)
    preds, linkage, cutoff = calls.predictions, None, as_of
    if registry is not None and link is not None:
        preds, linkage, cutoff = _link_outcomes(
            agent, calls, Path(registry), Path(link), audit_key, as_of, policy
        )
    windows = windows_over(preds["time"].min(), preds["time"].max(), length)
    settings = Settings(spec, agent.reference, agent.contract.output.horizon_days, cutoff, policy, bootstrap)
    reports = evaluate_windows(windows, preds, calls.feedback, settings)
    m = agent.manifest["model"]
    owner = agent.contract.clinical_owner
    return MonitoringReport(
        generated_at=now or dt.datetime.now(dt.UTC),
        agent=agent.name,
        version=agent.version,
        bundle_sha256=agent.bundle_hash,
        registered_model=m.get("registered_model"),
        model_version=m.get("model_version"),
        mlflow_run_id=m.get("mlflow_run_id"),
        horizon_days=agent.contract.output.horizon_days,
        window_days=length.total_seconds() / 86_400,
        as_of=cutoff,
        min_cell=agent.reference.min_cell,
        thresholds=spec.model_dump(mode="json", exclude={"clinical_owner"}),
        clinical_owner=f"{owner.name} <{owner.contact}>",
        audit_records=calls.records,
        linkage=linkage,
        windows=reports,
        alerts=active_alerts(reports),
    )
