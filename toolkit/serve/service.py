"""What every front door (CDS Hooks, REST, MCP, the demo page) shares: the loaded agents, the
authenticator, the audit log, the metrics, and one audited prediction call."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.agents.fhir import UsedDatum
from toolkit.agents.load import Agent, Prediction
from toolkit.errors import AgentError, InputValidationError, MissingDataError
from toolkit.monitor import call_fields, patient_pseudonym, refused_fields
from toolkit.serve.audit import AuditLog, inputs_digest, mark_audited, read_key
from toolkit.serve.auth import Authenticator, MemoryJtiCache, Principal, SqliteJtiCache
from toolkit.serve.metrics import Metrics
from toolkit.serve.monitoring import MonitoringCollector, MonitoringStatus
from toolkit.serve.settings import Settings

log = logging.getLogger("regent.serve")


def load_agents(folder: Path) -> dict[str, Agent]:
    """Every valid bundle in ``folder``; for each agent name the highest version wins."""
    agents: dict[str, Agent] = {}
    for d in sorted(Path(folder).glob("*/SHA256SUMS")):
        agent = Agent.load(d.parent)
        cur = agents.get(agent.name)
        if cur is None or _vkey(agent.version) > _vkey(cur.version):
            agents[agent.name] = agent
    return agents


def _vkey(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


@dataclass
class Runtime:
    settings: Settings
    agents: dict[str, Agent]
    auth: Authenticator
    audit: AuditLog | None
    metrics: Metrics
    audit_key: bytes | None = None
    monitoring: MonitoringStatus | None = None

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        audit, key = None, None
        if settings.audit_path is not None:
            key = read_key(settings.audit_key_file) if settings.audit_key_file is not None else None
            audit = AuditLog(settings.audit_path, sync=settings.audit_sync, key=key)
        jti = SqliteJtiCache(settings.audit_path) if settings.audit_path is not None else MemoryJtiCache()
        agents = load_agents(settings.agents_dir)
        metrics = Metrics()
        monitoring = None
        if settings.monitoring_dir is not None:
            monitoring = MonitoringStatus(settings.monitoring_dir, agents)
            metrics.add_collector(MonitoringCollector(monitoring))
        return cls(settings, agents, Authenticator(settings, jti), audit, metrics, key, monitoring)

    def patient_ref(self, patient_id: str) -> str:
        """The audit log's pseudonym of a FHIR patient id (keyed with the audit key, if any)."""
        return patient_pseudonym(patient_id, self.audit_key)

    def card_notice(self, agent: Agent) -> str | None:
        """A monitoring note for the card, while the agent is under a calibration alert."""
        return self.monitoring.card_notice(agent) if self.monitoring is not None else None

    def agent(self, name: str) -> Agent:
        a = self.agents.get(name)
        if a is None:  # the name came from the caller: not repeated
            raise AgentError(f"unknown agent; this server has {sorted(self.agents)}")
        return a

    def record(self, **fields: Any) -> None:
        """Append an audit record and mark the current request as audited."""
        mark_audited()
        if self.audit is not None:
            self.audit.append(fields)

    def predict(
        self,
        agent: Agent,
        inputs: Mapping[str, Any],
        *,
        principal: Principal,
        kind: str,
        call: str,
        explain: bool = False,
        hook_instance: str | None = None,
        card_uuid: str | None = None,
        patient_ref: str | None = None,
    ) -> Prediction:
        """One audited prediction; errors are audited with their status and re-raised.

        The record keeps what monitoring needs without values: each input's reference bin and
        flags (:func:`toolkit.monitor.call_fields`) and, for CDS Hooks, the patient's pseudonym.
        """
        start = time.perf_counter()
        status, risk, digest = 200, None, None
        monitor: dict[str, Any] = {}
        try:
            p = agent.explain(inputs) if explain else agent.predict(inputs)
            risk = p.risk
            digest = inputs_digest(p.inputs)  # the validated values: the same on every route
            monitor = call_fields(agent.reference, p.inputs, p.flags)
            return p
        except MissingDataError as exc:
            status = 412
            monitor = refused_fields(exc.fields)
            raise
        except InputValidationError:
            status = 422
            raise
        except Exception:
            status = 0  # unexpected: audited by the error handler, with its error id
            raise
        finally:
            if status:
                self.record(
                    kind=kind,
                    call=call,
                    hook_instance=hook_instance,
                    agent=agent.name,
                    version=agent.version,
                    bundle_sha256=agent.bundle_hash,
                    auth=principal.method,
                    issuer=principal.issuer,
                    tenant=principal.tenant,
                    jti=principal.jti,
                    client=principal.subject,
                    inputs_sha256=digest or inputs_digest(inputs),
                    risk=risk,
                    card_uuid=card_uuid if status == 200 else None,
                    status=status,
                    latency_ms=round(1000 * (time.perf_counter() - start), 3),
                    **({"patient_ref": patient_ref} if patient_ref is not None else {}),
                    **monitor,
                )


def prediction_dict(p: Prediction) -> dict[str, Any]:
    """``Prediction.to_dict`` without ``dataclasses.asdict``'s deep copies (the hot path)."""
    return {
        "agent": p.agent,
        "version": p.version,
        "risk": p.risk,
        "risk_group": p.risk_group,
        "indicator": p.indicator,
        "horizon_days": p.horizon_days,
        "summary": p.summary,
        "contributions": [
            {"input": c.input, "value": c.value, "contribution": c.contribution, "direction": c.direction}
            for c in p.contributions
        ],
        "warnings": list(p.warnings),
        "imputed": list(p.imputed),
        "suggestion": p.suggestion,
        "inputs": dict(p.inputs),
        "flags": {k: list(v) for k, v in p.flags.items()},
    }


#: the override reasons each card offers (CDS Hooks 2.0 Card.overrideReasons); feedback stores
#: one of these codes, or 'unlisted', never text sent by the client
OVERRIDE_SYSTEM = "urn:regent:cds:override-reason"
OVERRIDE_REASONS = (
    ("not-relevant", "Not relevant for this patient"),
    ("already-addressed", "Already addressed"),
    ("data-incorrect", "The data used are wrong or out of date"),
    ("patient-declined", "Patient declined"),
    ("other", "Other reason"),
)
OVERRIDE_CODES = {(OVERRIDE_SYSTEM, code) for code, _ in OVERRIDE_REASONS}


def card_for(
    agent: Agent,
    p: Prediction,
    used: list[UsedDatum],
    base: str,
    card_uuid: str,
    *,
    notes: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """A CDS Hooks 2.0 card from a prediction: risk and horizon, why, the data used, the evidence."""
    dates = {u.input: u.date for u in used}
    label = {i.name: i.label or i.name for i in agent.contract.inputs}
    specs = {i.name: i for i in agent.contract.inputs}
    imputed = set(p.imputed)
    lines = ["**Top contributing factors:**"]
    for c in p.contributions:
        when = f" ({dates[c.input]})" if dates.get(c.input) and c.input not in imputed else ""
        shown = _shown(c.value, specs.get(c.input)) + (" (imputed)" if c.input in imputed else "")
        lines.append(f"- {label.get(c.input, c.input)}: {shown}{when} — {c.direction}")
    lines += ["", "**Data used:**"]
    for u in used:
        if u.input in imputed:
            continue
        source = u.resource + (f" {u.code}" if u.code else "")
        if u.code is None and u.resource != "Patient":
            source = f"no {u.resource} found (taken as absent)"
        lines.append(f"- {label.get(u.input, u.input)}: {source}" + (f", {u.date}" if u.date else ""))
    for name in p.imputed:
        lines.append(f"- {label.get(name, name)}: not available, imputed (see the data notes)")
    data_notes = [*p.warnings, *(n for ns in (notes or {}).values() for n in ns)]
    if data_notes:
        lines += ["", "**Data notes:**"] + [f"- {w}" for w in data_notes]
    card: dict[str, Any] = {
        "uuid": card_uuid,
        "summary": p.summary[:139],
        "indicator": p.indicator,
        "detail": "\n".join(lines),
        "source": {
            "label": f"{agent.contract.title} (Regent agent {agent.name} v{agent.version})"[:200],
            "url": f"{base}/agents/{agent.name}/model-card",
        },
        "links": [
            {"label": "Model card", "url": f"{base}/agents/{agent.name}/model-card", "type": "absolute"}
        ],
        "overrideReasons": [
            {"system": OVERRIDE_SYSTEM, "code": code, "display": text} for code, text in OVERRIDE_REASONS
        ],
    }
    if p.suggestion:
        card["suggestions"] = [{"label": p.suggestion, "uuid": str(uuid.uuid4()), "isRecommended": True}]
        card["selectionBehavior"] = "at-most-one"
    return card


def _shown(value: Any, spec: Any) -> str:
    if spec is not None and spec.type == "boolean":
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    unit = getattr(spec, "unit", None)
    return f"{value} {unit}" if unit and unit != "a" else str(value)
