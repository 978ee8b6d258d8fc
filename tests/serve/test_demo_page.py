"""The demo page end to end in headless Chromium (Playwright driving Debian's chromium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import REPO
from tests.serve.helpers import running
from toolkit.serve.app import create_app
from toolkit.serve.audit import read_records
from toolkit.serve.settings import Settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed"),
]


@pytest.fixture(scope="module")
def demo(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    audit = tmp_path_factory.mktemp("demo") / "audit.sqlite"
    settings = Settings(
        agents_dir=gbsg2_bundle.parent, auth="off", audit_path=audit, demo_dir=REPO / "agents"
    )
    with running(create_app(settings)) as url:
        yield url, audit


def test_pick_a_patient_see_data_and_card_then_override(demo: tuple[str, Path], tmp_path: Path) -> None:
    url, audit = demo
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{url}/demo")
            options = page.locator("#patient option")
            options.first.wait_for(state="attached")
            assert options.count() == 3  # the gbsg2 examples (hf-mortality is not loaded here)
            page.select_option("#patient", "gbsg2-recurrence/2-premenopausal-grade-iii-many-nodes")
            page.click("#call")
            card = page.locator(".card").first
            card.wait_for()
            summary = card.locator(".summary").inner_text()
            assert "5-year risk of recurrence or death" in summary
            assert "Top contributing factors" in card.inner_text() and "Data used" in card.inner_text()
            assert page.locator("#fhir tbody tr").count() >= 7  # Patient + 6 Observations
            assert "Observation" in page.locator("#fhir").inner_text()
            page.select_option(".card select", "data-incorrect")  # one of the reasons the card offers
            card.locator("button.override").click()
            page.locator(".status", has_text="Feedback recorded: overridden").wait_for()
            shot = Path(os.environ.get("REGENT_SCREENSHOTS", tmp_path)) / "demo-page.png"
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            uid = card.get_attribute("data-uuid")
            page.select_option("#patient", "gbsg2-recurrence/3-missing-grade")
            page.click("#call")
            page.locator("#cards .error", has_text="HTTP 412").wait_for()
            assert not errors, errors
        finally:
            browser.close()
    call, feedback = list(read_records(audit, card=str(uid)))
    assert call["kind"] == "cds-hooks" and call["client"] == "demo" and call["status"] == 200
    assert feedback["outcome"] == "overridden" and feedback["override_reason"] == "data-incorrect"
