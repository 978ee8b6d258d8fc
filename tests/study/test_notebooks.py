"""Every study notebook (and every scaffold's) is stored without outputs and runs headless."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
STUDIES = ["gbsg2_recurrence", "hf_mortality", "competing_risks"]
SCAFFOLDS = sorted(p.parent for p in (REPO / "toolkit/study/scaffold").glob("*/notebook.ipynb"))


@pytest.mark.parametrize(
    "path",
    [REPO / "studies" / s / "notebook.ipynb" for s in STUDIES] + [p / "notebook.ipynb" for p in SCAFFOLDS],
    ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}",
)
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]
    assert "parameters" in nb.cells[1].metadata.get("tags", [])


def _execute(folder: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> nbformat.NotebookNode:
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # the kernel inherits the test's environment
    nb = nbformat.read(folder / "notebook.ipynb", as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return nb


def _outputs(nb: nbformat.NotebookNode) -> tuple[list[str], list[str]]:
    html, kinds = [], []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            kinds.append(o.output_type)
            data = o.get("data", {})
            html.append(data.get("text/html", ""))
            if "image/png" in data:
                kinds.append("png")
            if o.output_type == "stream" and o.name == "stderr":
                kinds.append("stderr:" + o.text[:200])
    return html, kinds


@pytest.fixture(scope="module")
def nb_mlruns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MLflow store for all notebooks: creating a store (its schema migrations) takes seconds."""
    return tmp_path_factory.mktemp("nb") / "mlruns"


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_study_notebook_runs_headless(
    study: str,
    tmp_path: Path,
    nb_mlruns: Path,
    small_hf_registry: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"REGENT_OUT": str(tmp_path / "out"), "REGENT_MLRUNS": str(nb_mlruns)}
    if study != "gbsg2_recurrence":  # the synthetic studies run on the small registry
        env["REGENT_REGISTRY"] = str(small_hf_registry)
    nb = _execute(REPO / "studies" / study, env, monkeypatch)
    html, kinds = _outputs(nb)
    assert "error" not in kinds and not [k for k in kinds if k.startswith("stderr")], kinds
    joined = "\n".join(html)
    assert "class='consort'" in joined  # the attrition as a flow
    assert "MLflow run: <a href='http://127.0.0.1:5000/#/experiments/" in joined  # a link to the run
    assert kinds.count("png") >= 2  # KM / forest / calibration plots inline
    if study != "competing_risks":
        assert "C-index" in joined  # the model comparison table
    else:
        assert "cumulative incidence (95% CI)" in joined and "Fine" in joined
    assert (tmp_path / "out" / "report.html").exists() and (nb_mlruns / "mlflow.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize("template", ["survival", "prediction", "competing-risks"])
def test_scaffold_notebook_runs_headless(
    template: str,
    tmp_path: Path,
    nb_mlruns: Path,
    small_hf_registry: Path,
    data_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from toolkit.study.new import new_study

    folder = new_study("nb_" + template.replace("-", "_"), template=template, directory=tmp_path)
    env = {
        "REGENT_OUT": str(tmp_path / "out"),
        "REGENT_MLRUNS": str(nb_mlruns),
        "REGENT_REGISTRY": str(small_hf_registry),
    }
    html, kinds = _outputs(_execute(folder, env, monkeypatch))
    assert "error" not in kinds and not [k for k in kinds if k.startswith("stderr")], kinds
    assert "class='consort'" in "\n".join(html) and kinds.count("png") >= 1
    assert os.path.exists(tmp_path / "out" / "results.json")
