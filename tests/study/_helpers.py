"""Helpers shared by the study tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient


def strip_run_ids(results: dict[str, Any]) -> dict[str, Any]:
    """results.json without what differs between two runs of the same study: the tracker's ids."""
    out = {k: v for k, v in results.items() if k != "mlflow_run_id"}
    out["models"] = {
        name: {k: v for k, v in m.items() if k not in ("mlflow_run_id", "model_uri", "model_version")}
        for name, m in results.get("models", {}).items()
    }
    return out


def execute_notebook(
    folder: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> nbformat.NotebookNode:
    """Run ``folder/notebook.ipynb`` headless in its folder, as JupyterLab would."""
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # the kernel inherits the test's environment
    nb = nbformat.read(folder / "notebook.ipynb", as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()
    return nb


def notebook_outputs(nb: nbformat.NotebookNode) -> tuple[list[str], list[str]]:
    """(the HTML outputs, the kinds of every output: 'png', 'error', 'stderr:<text>', ...)."""
    html, kinds = [], []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            kinds.append(o.output_type)
            data = o.get("data", {})
            html.append(data.get("text/html", ""))
            if "image/png" in data:
                kinds.append("png")
            if o.output_type == "stream" and o.name == "stderr":
                kinds.append("stderr:" + o.text[:300])
    return html, kinds
