"""The main job end to end: registry -> study -> gated bundle -> Python call -> CDS Hooks over HTTP."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from tests.study.test_report_sections import unshown
from tests.study.test_results_unchanged import assert_unchanged
from toolkit.agents.bundle import verify_bundle
from toolkit.cli.demo import run_demo

REPO = Path(__file__).resolve().parents[1]


def test_main_job(tmp_path: Path, data_dir: Path) -> None:
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = run_demo(
            root=REPO,
            out=tmp_path / "out",
            mlruns=tmp_path / "mlruns",
            dist=tmp_path / "dist",
            say=lines.append,
        )
    bundle = Path(str(out["bundle"]))
    verify_bundle(bundle)
    assert bundle.name.startswith("hf-mortality-1.0.")
    card = out["card"]
    assert card["summary"].startswith("1-year risk of death")  # type: ignore[index]
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "results.json").is_file()
    assert any("mlflow ui" in line for line in lines)
    # the FHIR request and the JSON patient describe the same person: same risk
    assert str(out["prediction"].summary) == card["summary"]  # type: ignore[attr-defined,index]
    # the flagship's results are what the engine wrote before it became typed stages
    assert_unchanged("hf_mortality", json.loads((tmp_path / "out" / "results.json").read_text()))
    # every section of results.json has its place in the report (tests/study/test_report_sections.py)
    assert unshown(tmp_path / "out") == []
    # the Cox analysis says who it left out (issue 16: 1,085 incomplete cases were dropped silently)
    report = " ".join((tmp_path / "out" / "report.html").read_text(encoding="utf-8").split())
    assert "Complete-case analysis: 3,267 of 4,352 persons; 1,085 left out for a missing value" in report
    _printed(tmp_path / "out" / "report.html", tmp_path)


def _printed(report: Path, tmp_path: Path) -> None:
    """The flagship report printed through Chromium runs to about ten A4 pages, and a screenshot
    of it is saved (its path printed) for a person to look at."""
    import shutil

    import pytest

    from toolkit.study.printing import print_pdf

    if shutil.which("chromium") is None:
        pytest.skip("printing needs chromium (`.ci/run` installs it)")
    pages = print_pdf(report, tmp_path / "report.pdf")
    print(f"\nflagship report: {pages} A4 pages ({tmp_path / 'report.pdf'})")
    assert 8 <= pages <= 12
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.goto(report.as_uri(), wait_until="load")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    print(f"flagship report screenshot: {tmp_path / 'report.png'}")
    assert (tmp_path / "report.png").stat().st_size > 100_000
