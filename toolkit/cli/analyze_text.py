"""Plain-text summaries of analysis entries (already disclosure-controlled) for ``regent analyze``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _n(x: Any) -> str:
    """A released count: withheld counts are None."""
    return "<suppressed>" if x is None else str(x)


def _g(x: Any, fmt: str = ".4g") -> str:
    return "NA" if x is None else format(float(x), fmt)


def _p(x: Any) -> str:
    if x is None:
        return "NA"
    return "<0.0001" if float(x) < 1e-4 else f"{float(x):.4f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _coefficients(d: dict[str, Any], ratio: str) -> str:
    key = "hr" if ratio == "HR" else "shr"
    rows = [
        [
            c["term"],
            _g(c["coef"]),
            _g(c.get("robust_se") or c["se"]),
            f"{_g(c[key], '.3f')} ({_g(c[key + '_lower'], '.3f')}-{_g(c[key + '_upper'], '.3f')})",
            _p(c["p"]),
        ]
        for c in d["coefficients"]
    ]
    return _table(["term", "coef", "se", f"{ratio} (95% CI)", "p"], rows)


def _cox(d: dict[str, Any]) -> str:
    what = (
        "Cox proportional hazards" if d.get("cause", 1) == 1 else f"Cause-specific Cox (cause {d['cause']})"
    )
    out = [
        f"{what}, {d['ties']} ties; n = {_n(d['n'])}, events = {_n(d['events'])}"
        + (f", strata: {d['strata']}" if d.get("strata") else "")
        + (" (robust SE)" if d.get("robust") else ""),
        _coefficients(d, "HR"),
        f"Likelihood-ratio test: chi2 = {_g(d['lr_test']['chisq'])}, df = {d['lr_test']['df']}, "
        f"p = {_p(d['lr_test']['p'])};  concordance = {_g(d['concordance'], '.3f')}",
    ]
    ph = d.get("ph_test")
    if ph:
        rows = [[r["term"], _g(r["chisq"]), str(r["df"]), _p(r["p"])] for r in [*ph["terms"], ph["global"]]]
        out += [
            "Proportional-hazards test (cox.zph, transform km):",
            _table(["term", "chisq", "df", "p"], rows),
        ]
    return "\n".join(out)


def _fine_gray(d: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"Fine-Gray subdistribution hazards, cause {d['cause']}; n = {_n(d['n'])}, "
            f"events = {_n(d['events'])}, competing events = {_n(d['competing']['events'])}",
            _coefficients(d, "SHR"),
        ]
    )


def _logrank(d: dict[str, Any]) -> str:
    rows = [[g["group"], _n(g["observed"]), _g(g["expected"], ".2f")] for g in d["groups"]]
    return "\n".join(
        [
            ("Stratified log-rank" if d.get("stratified") else "Log-rank")
            + f" test: chi2 = {_g(d['chisq'])}, df = {d['df']}, p = {_p(d['p'])}",
            _table(["group", "observed", "expected"], rows),
        ]
    )


def _km(d: dict[str, Any]) -> str:
    rows = [
        [
            g["group"],
            _n(g["n"]),
            _n(g["events"]),
            f"{_g(g['median'])} ({_g(g['median_lower'])}-{_g(g['median_upper'])})",
        ]
        for g in d["groups"]
    ]
    out = ["Kaplan-Meier (log-log 95% CI)", _table(["group", "n", "events", "median (95% CI)"], rows)]
    at = [
        [
            g["group"],
            _g(a["time"]),
            f"{_g(a['survival'], '.3f')} ({_g(a['lower'], '.3f')}-{_g(a['upper'], '.3f')})",
            _n(a["n_risk"]),
        ]
        for g in d["groups"]
        for a in g["at"]
    ]
    if at:
        out.append(_table(["group", "time", "survival (95% CI)", "at risk"], at))
    if d.get("logrank"):
        out.append(_logrank(d["logrank"]).splitlines()[0])
    return "\n".join(out)


def _rmst(d: dict[str, Any]) -> str:
    rows = [
        [g["group"], _n(g["n"]), _g(g["rmst"]), _g(g["se"]), f"{_g(g['lower'])}-{_g(g['upper'])}"]
        for g in d["groups"]
    ]
    out = [
        f"Restricted mean survival time to tau = {_g(d['tau'])}",
        _table(["group", "n", "RMST", "se", "95% CI"], rows),
    ]
    if d["contrasts"]:
        crow = [
            [
                f"{c['group']} - {c['reference']}",
                f"{_g(c['difference'])} ({_g(c['difference_lower'])} to {_g(c['difference_upper'])})",
                _p(c["difference_p"]),
                f"{_g(c['ratio'], '.3f')} ({_g(c['ratio_lower'], '.3f')}-{_g(c['ratio_upper'], '.3f')})",
            ]
            for c in d["contrasts"]
        ]
        out.append(_table(["contrast", "difference (95% CI)", "p", "ratio (95% CI)"], crow))
    return "\n".join(out)


def _cif(d: dict[str, Any]) -> str:
    rows = [
        [g["group"], str(c["cause"]), _n(g["n"]), _n(c["events"])] for g in d["groups"] for c in g["causes"]
    ]
    out = [
        "Cumulative incidence (Aalen-Johansen, log 95% CI)",
        _table(["group", "cause", "n", "events"], rows),
    ]
    at = [
        [
            g["group"],
            str(c["cause"]),
            _g(a["time"]),
            f"{_g(a['cif'], '.3f')} ({_g(a['lower'], '.3f')}-{_g(a['upper'], '.3f')})",
            _n(a["n_risk"]),
        ]
        for g in d["groups"]
        for c in g["causes"]
        for a in c["at"]
    ]
    if at:
        out.append(_table(["group", "cause", "time", "cumulative incidence (95% CI)", "at risk"], at))
    for t in d.get("gray", []):
        out.append(
            f"Gray's test, cause {t['cause']}: chi2 = {_g(t['chisq'])}, df = {t['df']}, p = {_p(t['p'])}"
        )
    return "\n".join(out)


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "cox": _cox,
    "fine_gray": _fine_gray,
    "logrank": _logrank,
    "kaplan_meier": _km,
    "rmst": _rmst,
    "cumulative_incidence": _cif,
}


def render(entry: dict[str, Any]) -> str:
    text = RENDERERS[entry["type"]](entry)
    warnings = entry.get("warnings") or []
    return text + "".join(f"\nwarning: {w}" for w in warnings)
