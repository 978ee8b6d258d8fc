"""The self-contained HTML report of a study run (Jinja2, images embedded as data URIs)."""

from __future__ import annotations

import base64
import datetime as dt
import math
import re
from importlib import resources
from typing import Any

import jinja2
import markupsafe

from toolkit.analysis.labels import format_p
from toolkit.cohort.run import Attrition, consort_html
from toolkit.disclosure import DisclosurePolicy
from toolkit.study.kinds import KINDS
from toolkit.study.report_context import report_context
from toolkit.study.results import StudyResults
from toolkit.study.spec import StudySpec


def _env() -> jinja2.Environment:
    loader = jinja2.FunctionLoader(
        lambda name: (resources.files("toolkit.study") / "templates" / name).read_text(encoding="utf-8")
    )
    env = jinja2.Environment(loader=loader, autoescape=jinja2.select_autoescape(["html", "j2"]))
    env.filters["num"] = _num
    env.filters["exp"] = lambda v: None if v is None else math.exp(float(v))
    env.filters["ticks"] = _ticks
    env.filters["count"] = _count
    env.filters["pval"] = format_p  # journal style: <0.001, 0.004, 0.21
    return env


def _count(value: Any, k: int = 10, status: str | None = None) -> str:
    """A released count; a withheld one (None) reads ``<k``, or ``withheld`` for a complement."""
    if value is None:
        return DisclosurePolicy(min_cell=k).marker(status or "small")
    return f"{int(value):,}"


def _ticks(text: str) -> markupsafe.Markup:
    """Escape ``text`` and show `backticked` spans as code (checklist notes name study.yaml keys)."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped))


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "NA"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def _data_uri(plot: bytes) -> str:
    """The figure as the report embeds it: its SVG when it has one (sharp on screen and in print;
    :class:`toolkit.analysis.figure.Plot`), else the PNG."""
    svg = getattr(plot, "svg", "")
    if svg:
        return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode()
    return "data:image/png;base64," + base64.b64encode(plot).decode()


def render_report(
    spec: StudySpec,
    results: StudyResults,
    plots: dict[str, bytes],
    policy: DisclosurePolicy,
    attrition: Attrition,
) -> str:
    images = {k: _data_uri(v) for k, v in plots.items()}
    flow = consort_html(Attrition(policy.attrition(attrition.table, markers=True)), min_cell=policy.min_cell)
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            spec=spec,
            r=results.to_json(),
            images=images,
            flow=flow,
            policy_text=policy.describe(),
            min_cell=policy.min_cell,
            attrition_note=policy.footnote(
                st for row in results.cohort.attrition for st in (row.suppressed or {}).values()
            ),
            kinds=KINDS,
            generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            **report_context(spec, results),
        )
    )
