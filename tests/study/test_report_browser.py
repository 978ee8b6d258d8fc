"""The report in a real browser: headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _playwright():  # type: ignore[no-untyped-def]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


@pytest.mark.browser
def test_report_opens_in_chromium_without_console_errors(gbsg2_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sync_playwright = _playwright()
    if sync_playwright is None or not CHROMIUM.exists():
        pytest.skip("needs the playwright package and /usr/bin/chromium (`.ci/run` installs both)")
    _, _, root = gbsg2_run
    report = tmp_path / "report.html"
    shutil.copy(root / "out" / "report.html", report)  # a copy: nothing beside it can be loaded
    messages: list[str] = []
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.on(
            "console",
            lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(report.as_uri(), wait_until="load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.complete, e.naturalWidth])")
        kinds = page.eval_on_selector_all("section img", "els => els.map(e => e.src.slice(0, 26))")
        headers = page.eval_on_selector_all("table.data", "els => els.map(e => !!e.tHead)")
        rows = page.locator(
            "#tripod tr.row-missing, #tripod tr.row-addressed, #tripod tr.row-partial, #tripod tr.row-not_applicable"
        )
        n_rows = rows.count()
        title = page.title()
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        page.emulate_media(media="print")
        toc_in_print = page.locator("nav.toc").is_visible()
        pdf = page.pdf(format="A4")
        browser.close()
    print(f"\nreport screenshot: {shot}")
    assert messages == []
    assert all(u.startswith(("file:", "data:")) for u in requests), requests  # self-contained
    assert len(images) >= 4 and all(done and width > 0 for done, width in images)
    assert kinds and all(k.startswith("data:image/svg+xml") for k in kinds)  # figures as SVG
    assert headers and all(headers)  # a table split over pages repeats its header row
    assert n_rows == 52 and "GBSG2" in title
    assert not toc_in_print  # the navigation is for the screen only
    assert pdf[:4] == b"%PDF" and len(pdf) > 50_000
    assert shot.stat().st_size > 50_000


@pytest.mark.browser
def test_regent_study_report_prints_a_pdf(gbsg2_run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`regent study report OUT --pdf` through the real entry point and Debian's Chromium."""
    import subprocess
    import sys

    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium (`.ci/run` installs it)")
    _, _, root = gbsg2_run
    target = tmp_path / "gbsg2.pdf"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "toolkit.cli.main",
            "study",
            "report",
            str(root / "out"),
            "--pdf",
            "--to",
            str(target),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    from toolkit.study.printing import pdf_pages

    pages = pdf_pages(target.read_bytes())
    assert f"({pages} A4 pages)" in done.stdout and 4 <= pages <= 14
    missing = subprocess.run(
        [sys.executable, "-m", "toolkit.cli.main", "study", "report", str(tmp_path / "nothing"), "--pdf"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and "no report" in missing.stderr and "Traceback" not in missing.stderr
