"""Every study notebook (and every scaffold's) is stored without outputs and runs headless."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from tests.study._helpers import execute_notebook, notebook_outputs

REPO = Path(__file__).resolve().parents[2]
STUDIES = ["gbsg2_recurrence", "hf_mortality", "competing_risks"]
NOTEBOOKS = [REPO / "studies" / s / "notebook.ipynb" for s in STUDIES] + sorted(
    (REPO / "toolkit/study/scaffold").glob("*/notebook.ipynb")
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert "parameters" in nb.cells[1].metadata.get("tags", [])


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_study_notebook_runs_headless(
    study: str,
    tmp_path: Path,
    nb_mlruns: Path,
    small_hf_registry: Path,
    data_dir: Path,
    gbsg2_run,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out"
    env = {"REGENT_OUT": str(out), "REGENT_MLRUNS": str(nb_mlruns)}
    if study == "gbsg2_recurrence":  # the same study ran in the fixture: start from its cache
        shutil.copytree(gbsg2_run[2] / "out" / ".cache", out / ".cache")
    else:  # the synthetic studies run on the small registry
        env["REGENT_REGISTRY"] = str(small_hf_registry)
    nb = execute_notebook(REPO / "studies" / study, env, monkeypatch)
    html, kinds = notebook_outputs(nb)
    assert "error" not in kinds and not [k for k in kinds if k.startswith("stderr")], kinds
    joined = "\n".join(html)
    assert "class='consort'" in joined  # the attrition as a flow
    assert "MLflow run: <a href='http://127.0.0.1:5000/#/experiments/" in joined  # a link to the run
    assert kinds.count("png") >= 1  # plots inline
    if study != "competing_risks":
        assert "C-index" in joined and kinds.count("png") >= 3  # the model comparison, KM, calibration
    else:
        assert "cumulative incidence (95% CI)" in joined and "Fine" in joined
    assert (out / "report.html").exists() and (nb_mlruns / "mlflow.db").exists()
