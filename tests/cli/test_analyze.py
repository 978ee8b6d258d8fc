"""``regent analyze``: each command's JSON is the library's results.json entry (disclosure-controlled);
bad options end with a message naming the option, and a non-zero exit without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from toolkit.analysis.survival.cif import cumulative_incidence
from toolkit.analysis.survival.finegray import fine_gray
from toolkit.cli.analyze import analyze_app
from toolkit.disclosure import COUNT_KEYS, DisclosurePolicy
from toolkit.errors import AnalysisError

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "survival"
MGUS2 = str(DATA / "mgus2.csv")
LUNG = str(DATA / "lung.csv")
runner = CliRunner()


def _run(*args: str) -> Any:
    return runner.invoke(analyze_app, list(args))


def _json(*args: str) -> dict[str, Any]:
    res = _run(*args, "--json")
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def test_cif_json_is_the_scrubbed_results_entry() -> None:
    from toolkit.analysis.survival.release import cif_entry
    from toolkit.study.kinds.base import count_marks

    out = _json("cif", "--data", MGUS2, "--by", "sex", "--times", "60,330")
    frame = pd.read_csv(MGUS2)
    res = cumulative_incidence(frame, by="sex", times=[60, 330])
    policy = DisclosurePolicy(min_cell=10)
    curves = {g.curve.group: g.curve for g in res.groups}
    marks = count_marks(
        frame.assign(event=frame["event"].astype(int)), "sex", policy, causes=(1, 2), per_cause=True
    )
    expected = cif_entry(res.to_dict(), curves, marks, policy)
    assert out == json.loads(json.dumps(policy.scrub(expected, COUNT_KEYS)))
    at_330 = [a for g in out["groups"] for c in g["causes"] for a in c["at"] if a["time"] == 330]
    # 1-9 at risk: the curve has stopped, count and estimate withheld (issue 15)
    assert all(a["n_risk"] is None and a["cif"] is None for a in at_330)
    shown = _json("cif", "--data", MGUS2, "--by", "sex", "--times", "330", "--no-disclosure")
    assert all(a["n_risk"] > 0 for g in shown["groups"] for c in g["causes"] for a in c["at"])


def test_finegray_json_names_text_levels_and_matches_the_library() -> None:
    out = _json("finegray", "--data", MGUS2, "--covariates", "age,sex,hgb,mspike", "--cause", "2")
    lib = fine_gray(pd.read_csv(MGUS2), covariates=["age", "sex", "hgb", "mspike"], cause=2)
    assert out["type"] == "fine_gray" and out["cause"] == 2
    assert [c["term"] for c in out["coefficients"]] == ["age", "sex=M", "hgb", "mspike"]
    assert [c["coef"] for c in out["coefficients"]] == [t.coef for t in lib.terms]


@pytest.mark.parametrize(
    ("args", "kind"),
    [
        (("cox", "--data", LUNG, "--covariates", "age,sex,ph_ecog", "--ties", "breslow"), "cox"),
        (("cox", "--data", MGUS2, "--covariates", "age,sex", "--cause", "2"), "cox"),
        (("km", "--data", LUNG, "--by", "sex", "--times", "180,365"), "kaplan_meier"),
        (("logrank", "--data", LUNG, "--by", "sex", "--strata", "ph_ecog"), "logrank"),
        (("rmst", "--data", LUNG, "--by", "sex", "--tau", "365"), "rmst"),
    ],
)
def test_each_command_prints_its_entry(args: tuple[str, ...], kind: str) -> None:
    out = _json(*args)
    assert out["type"] == kind
    text = _run(*args)
    assert text.exit_code == 0 and text.stdout.strip()


def test_cause_specific_cox_and_ph_test_in_text() -> None:
    res = _run("cox", "--data", MGUS2, "--covariates", "age,sex", "--cause", "2")
    assert "Cause-specific Cox (cause 2)" in res.stdout
    assert "Proportional-hazards test (cox.zph, transform km)" in res.stdout and "GLOBAL" in res.stdout


def test_rmst_text_shows_groups_and_the_contrast() -> None:
    res = _run("rmst", "--data", LUNG, "--by", "sex", "--tau", "365")
    assert "Restricted mean survival time to tau = 365" in res.stdout
    assert "2 - 1" in res.stdout


def test_plots_are_written(tmp_path: Path) -> None:
    for cmd, extra in (
        ("cif", ["--by", "sex"]),
        ("km", ["--by", "sex"]),
        ("cox", ["--covariates", "age,sex"]),
    ):
        png = tmp_path / f"{cmd}.png"
        res = _run(cmd, "--data", MGUS2, *extra, "--plot", str(png))
        assert res.exit_code == 0, res.output
        assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rmst", "--data", LUNG), "--tau is required"),
        (("logrank", "--data", LUNG), "--by is required"),
        (("cox", "--data", LUNG), "--covariates is required"),
        (("km", "--data", LUNG, "--by", "sexx"), "--by 'sexx': no such column in lung.csv; available:"),
        (
            ("cox", "--data", LUNG, "--covariates", "age", "--ties", "exact"),
            "--ties: expected 'efron' or 'breslow'",
        ),
        (("cif", "--data", LUNG, "--times", "30,abc"), "--times: 'abc' is not a number"),
        (("rmst", "--data", LUNG, "--tau", "365", "--plot", "x.png"), "there is no plot for rmst"),
        (("km", "--data", "nope.csv"), "--data nope.csv: no such file"),
        (("km", "--data", LUNG, "--min-cell", "0"), "--min-cell must be >= 1"),
    ],
)
def test_bad_options_name_the_option(args: tuple[str, ...], message: str) -> None:
    res = _run(*args)
    assert isinstance(res.exception, AnalysisError)
    assert message in str(res.exception)


def test_errors_exit_2_without_a_traceback_through_the_real_entry_point() -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit.cli.main",
            "analyze",
            "finegray",
            "--data",
            MGUS2,
            "--covariates",
            "agee",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={"PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 2
    assert "columns ['agee'] not in the data" in r.stderr and "Traceback" not in r.stderr


def _lung_with(tmp_path: Path, column: str, rows: int, value: object) -> str:
    frame = pd.read_csv(LUNG).astype({column: object})
    frame.loc[: rows - 1, column] = value
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return str(path)


#: each command with the options it needs besides --data
_NEEDS = {
    "km": (),
    "cox": ("--covariates", "age"),
    "logrank": ("--by", "sex"),
    "rmst": ("--tau", "365"),
    "aft": (),
    "cif": (),
    "finegray": ("--covariates", "age"),
}


@pytest.mark.parametrize("command", sorted(_NEEDS))
@pytest.mark.parametrize(
    ("column", "rows", "value", "message"),
    [
        ("time", 5, -30, "--time 'time' in bad.csv: 5 of 226 rows are negative"),
        ("time", 3, "soon", "--time 'time' in bad.csv: 3 of 226 rows are not numbers"),
        ("time", 4, None, "--time 'time' in bad.csv: 4 of 226 rows are empty"),
        ("event", 7, -1, "--event 'event' in bad.csv: 7 of 226 rows are not event codes 0..k"),
        ("event", 2, 0.5, "--event 'event' in bad.csv: 2 of 226 rows are not event codes 0..k"),
        ("event", 6, "dead", "--event 'event' in bad.csv: 6 of 226 rows are not numbers"),
    ],
)
def test_bad_times_and_event_codes_are_refused_naming_column_and_rows(
    tmp_path: Path, command: str, column: str, rows: int, value: object, message: str
) -> None:
    data = _lung_with(tmp_path, column, rows, value)
    res = _run(command, "--data", data, *_NEEDS[command])
    assert isinstance(res.exception, AnalysisError), res.output
    assert message in str(res.exception)


def test_r_style_status_coding_is_pointed_out(tmp_path: Path) -> None:
    frame = pd.read_csv(LUNG)
    path = tmp_path / "r.csv"
    frame.assign(event=frame["event"] + 1).to_csv(path, index=False)  # Surv(): 1 censored, 2 dead
    res = _run("km", "--data", str(path))
    assert res.exit_code == 0
    assert "R's Surv() coding" in res.stderr
