"""``regent agent monitor``: a thin command over :func:`toolkit.monitor.run.monitor_bundle`."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import typer

from toolkit.monitor.calls import MonitorError


def agent_monitor(
    bundle: Annotated[Path, typer.Argument(help="The agent bundle in service")],
    audit: Annotated[Path, typer.Option("--audit", help="The server's SQLite audit log")],
    out_dir: Annotated[Path, typer.Option("--out", help="Where monitoring.json and monitoring.html go")],
    registry: Annotated[
        Path | None, typer.Option("--registry", help="The registry outcomes are read from (with --link)")
    ] = None,
    link: Annotated[
        Path | None,
        typer.Option("--link", help="CSV patient_id,person_id: CDS patient ids -> registry persons"),
    ] = None,
    window: Annotated[
        str | None, typer.Option("--window", help="Window length: 30d, 2w, 12h (default: agent.yaml)")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when an alert is active (scheduled jobs)")
    ] = False,
    audit_key: Annotated[
        Path | None,
        typer.Option(
            "--audit-key", help="The server's audit_key_file: checks every MAC; pseudonyms are keyed"
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Outcomes complete to this date (default: from the registry)"),
    ] = None,
    mlruns: Annotated[Path, typer.Option(help="MLflow store to log the report to")] = Path("mlruns"),
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log to MLflow")] = True,
) -> None:
    """Input drift, prediction drift, data-quality and feedback rates, and (with --registry and
    --link) calibration and discrimination as outcomes mature, per window; alerts per agent.yaml."""
    from toolkit.monitor.html import write_report
    from toolkit.monitor.run import monitor_bundle
    from toolkit.serve.audit import read_key, verify_audit

    key = read_key(audit_key) if audit_key is not None else None
    chain = verify_audit(audit, key=key)
    if not chain.ok:
        raise MonitorError(
            f"{audit}: the audit log's chain is broken ({len(chain.problems)} problems; run "
            "'regent audit verify'): not monitoring from a log that may have been altered"
        )
    cutoff = None
    if as_of is not None:
        try:
            cutoff = dt.datetime.fromisoformat(as_of)
        except ValueError:
            raise MonitorError("--as-of: expected an ISO date such as 2026-06-30") from None
        cutoff = cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=dt.UTC)
    report = monitor_bundle(
        bundle, audit, registry=registry, link=link, audit_key=key, window=window, as_of=cutoff
    )
    files = write_report(report, out_dir)
    say = sys.stdout.write
    say(
        f"{report.agent} {report.version}: {len(report.windows)} window(s) of {report.window_days:g} days; "
        f"report {files[0]} and {files[1]}\n"
    )
    if mlflow:
        from toolkit.tracking.monitoring import log_monitoring

        run_id = log_monitoring(report, files, root=mlruns)
        say(f"MLflow: run {run_id} in experiment {report.agent}.monitoring ({mlruns})\n")
    for a in report.alerts:
        value = "withheld" if a.value is None else f"{a.value:.3g}"
        say(f"ALERT {a.check} ({a.subject}): {value}, passes when {a.threshold}; since {a.since.date()}\n")
    if not report.alerts:
        say("no active alerts\n")
    if check and report.alerts:
        raise typer.Exit(1)
