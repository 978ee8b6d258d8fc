"""``regent study new NAME --template KIND``: scaffold a study folder that runs as generated.

The templates live in ``toolkit/study/scaffold/<kind>/`` (a commented study.yaml, a notebook that
walks through the study with the Python API, and a README).  ``__NAME__`` in them becomes the
study's name.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from toolkit.errors import StudySpecError
from toolkit.io import atomic_dir

TEMPLATES = {
    "survival": "survival",
    "prediction": "prediction",
    "competing-risks": "competing_risks",
}
NAME = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
FILES = ("study.yaml", "notebook.ipynb", "README.md")


def new_study(name: str, *, template: str = "survival", directory: Path | str = "studies") -> Path:
    """Create ``directory/name`` from a template; refuse to overwrite an existing folder.

    >>> new_study("hf_readmission", template="survival")      # doctest: +SKIP
    PosixPath('studies/hf_readmission')
    """
    if not NAME.match(name):
        raise StudySpecError(
            f"study name {name!r}: use lower-case letters, digits and '_', starting with a letter "
            "(it names the MLflow experiment and the registered models)"
        )
    if template not in TEMPLATES:
        raise StudySpecError(f"unknown template {template!r}; available: {', '.join(TEMPLATES)}")
    target = Path(directory) / name
    if target.exists():
        raise StudySpecError(f"{target}: already exists; choose another name or remove it")
    source = resources.files("toolkit.study") / "scaffold" / TEMPLATES[template]
    with atomic_dir(target, replace=False) as tmp:
        for fname in FILES:
            text = (source / fname).read_text(encoding="utf-8")
            (tmp / fname).write_text(text.replace("__NAME__", name), encoding="utf-8")
    return target
