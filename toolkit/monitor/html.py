"""The HTML monitoring report and writing both files (each replaced atomically)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2

from toolkit.io import atomic_write_text
from toolkit.monitor.report import MonitoringReport, WindowReport


def _num(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{float(value):.{digits}f}"


def _pct(value: Any) -> str:
    return "—" if value is None else f"{100 * float(value):.1f}%"


def _count(value: Any, k: int = 10) -> str:
    return f"<{k}" if value is None else f"{int(value):,}"


def _status_of(w: WindowReport) -> dict[tuple[str, str], str]:
    return {(c.check, c.subject): ("nj" if c.status == "not judged" else c.status) for c in w.checks}


def _largest_psi(w: WindowReport) -> tuple[str, float | None]:
    inputs = {k: v for k, v in w.psi.items() if k != "risk"}
    if not inputs:
        return "", None
    name = max(inputs, key=lambda k: inputs[k])
    return name, inputs[name]


def render_html(report: MonitoringReport) -> str:
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(
            lambda name: (resources.files("toolkit.monitor") / "templates" / name).read_text(encoding="utf-8")
        ),
        autoescape=True,
    )
    env.filters.update(num=_num, pct=_pct, count=_count)
    return env.get_template("monitoring.html.j2").render(
        r=report,
        status_of=_status_of,
        largest_psi=_largest_psi,
        thresholds=json.dumps(report.thresholds),
    )


def write_report(report: MonitoringReport, out: Path | str) -> tuple[Path, Path]:
    """``OUT/monitoring.html`` then ``OUT/monitoring.json`` (the server reads the JSON)."""
    out = Path(out)
    html = atomic_write_text(out / "monitoring.html", render_html(report))
    js = atomic_write_text(out / "monitoring.json", json.dumps(report.to_json(), indent=2) + "\n")
    return js, html
