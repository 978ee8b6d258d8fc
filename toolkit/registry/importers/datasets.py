"""Real public survival datasets that ship inside installed packages, with their mappings.

``regent registry import gbsg2 --out data/gbsg2.duckdb`` works offline: the data come from
lifelines or scikit-survival, the mapping from ``importers/mappings/<name>.yaml``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from toolkit.errors import ImportMappingError
from toolkit.registry.importers.flat import FlatMapping, import_flat, load_mapping


def _lifelines(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from lifelines import datasets

        return getattr(datasets, name)()

    return load


def _sksurv(name: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        from sksurv import datasets

        with warnings.catch_warnings():
            # sksurv's ARFF reader warns about pandas internals it uses; not ours to fix.
            warnings.simplefilter("ignore")
            x, y = getattr(datasets, name)()
        frame = x.copy()
        for field in y.dtype.names or ():
            col = np.asarray(y[field])
            frame[field] = col.astype(int) if col.dtype == bool else col
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.CategoricalDtype):
                frame[c] = frame[c].astype(object)
        return frame

    return load


LOADERS: dict[str, tuple[Callable[[], pd.DataFrame], str]] = {
    "gbsg2": (_lifelines("load_gbsg2"), "lifelines.datasets.load_gbsg2"),
    "lung": (_lifelines("load_lung"), "lifelines.datasets.load_lung"),
    "rossi": (_lifelines("load_rossi"), "lifelines.datasets.load_rossi"),
    "whas500": (_sksurv("load_whas500"), "sksurv.datasets.load_whas500"),
    "flchain": (_sksurv("load_flchain"), "sksurv.datasets.load_flchain"),
    "veterans": (_sksurv("load_veterans_lung_cancer"), "sksurv.datasets.load_veterans_lung_cancer"),
    "bmt": (_sksurv("load_bmt"), "sksurv.datasets.load_bmt"),
}


def dataset_names() -> list[str]:
    return sorted(LOADERS)


def mapping_path(name: str) -> Path:
    return Path(str(resources.files("toolkit.registry.importers") / "mappings" / f"{name}.yaml"))


def load_dataset(name: str) -> tuple[pd.DataFrame, FlatMapping]:
    """The raw frame and its mapping for a shipped dataset."""
    if name not in LOADERS:
        raise ImportMappingError(
            f"unknown dataset {name!r}; shipped datasets: {', '.join(dataset_names())} "
            "(or pass --csv FILE --mapping FILE)"
        )
    loader, _ = LOADERS[name]
    return loader(), load_mapping(mapping_path(name))


def import_dataset(name: str, out: Path | str, *, format: str = "duckdb") -> Path:
    frame, mapping = load_dataset(name)
    return import_flat(frame, mapping, out, source=str(mapping_path(name)), format=format)
