"""The main job end to end: registry -> study -> gated bundle -> Python call -> CDS Hooks over HTTP."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

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
