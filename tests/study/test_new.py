"""`regent study new`: each template scaffolds a study that runs as generated, notebook included."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from tests.study._helpers import execute_notebook, notebook_outputs
from toolkit.errors import StudySpecError
from toolkit.study.new import TEMPLATES, new_study
from toolkit.study.runner import run_study
from toolkit.study.spec import load_study


@pytest.mark.slow
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_each_template_scaffolds_a_study_that_runs(
    template: str,
    tmp_path: Path,
    nb_mlruns: Path,
    small_hf_registry: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolkit.cli.main import app

    name = f"my_{template.replace('-', '_')}"
    res = CliRunner().invoke(app, ["study", "new", name, "--template", template, "--dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    folder = tmp_path / name
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "notebook.ipynb", "study.yaml"]
    for f in folder.iterdir():
        assert "__NAME__" not in f.read_text(), f.name
    assert (folder / "study.yaml").read_text().count("#") >= 10  # a commented study.yaml
    spec, _ = load_study(folder)
    assert spec.name == name
    nb = nbformat.read(folder / "notebook.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")

    # the study as generated (only the registry is swapped for a small one) ...
    out = tmp_path / "out"
    run = run_study(folder, out=out, registry=small_hf_registry)
    assert (run.results.cohort.n or 0) > 500 and (out / "report.html").exists()
    assert json.loads((out / "results.json").read_text())["study"] == name
    if template == "prediction":
        assert set(run.results.models) == {"cox_1y", "xgb_1y"}
    if template == "competing-risks":
        assert set(run.frame["event"].dropna().astype(int)) == {0, 1, 2}

    # ... and its notebook, headless, on the same output folder: every step comes from the cache
    env = {"REGENT_OUT": str(out), "REGENT_MLRUNS": str(nb_mlruns), "REGENT_REGISTRY": str(small_hf_registry)}
    html, kinds = notebook_outputs(execute_notebook(folder, env, monkeypatch))
    assert "error" not in kinds and not [k for k in kinds if k.startswith("stderr")], kinds
    joined = "\n".join(html)
    assert "class='consort'" in joined and "every step re-used from the cache" in joined
    assert kinds.count("png") >= 1


def test_new_refuses_bad_names_templates_and_existing_folders(tmp_path: Path) -> None:
    with pytest.raises(StudySpecError, match=r"study name 'Bad-Name'"):
        new_study("Bad-Name", directory=tmp_path)
    with pytest.raises(StudySpecError, match=r"unknown template 'cohort'; available: survival, prediction"):
        new_study("ok_name", template="cohort", directory=tmp_path)
    new_study("ok_name", directory=tmp_path)
    with pytest.raises(StudySpecError, match=r"ok_name: already exists"):
        new_study("ok_name", directory=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["ok_name"]  # nothing half-written
