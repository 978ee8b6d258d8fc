"""The name/place classifier: gradient-boosted trees (XGBoost) over :mod:`.features`.

Each word gets three probabilities: not an identifier, a person's name, a place (hospital,
town, facility).  The fitted model is a JSON file (the trees plus the thresholds chosen by
cross-validation on its training notes); it holds no words, only splits on the features.
The shipped model (``data/name_place_model.json``) was fitted on the development half of the
PhysioNet ``deid`` corpus by ``tests/_scripts/fit_deid_model.py``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.errors import DeidentificationError
from toolkit.registry.deid.features import FEATURES

LABELS = ("O", "NAME", "LOCATION")
MODEL_PATH = Path(__file__).parent / "data" / "name_place_model.json"
PARAMS: dict[str, Any] = {
    "n_estimators": 150,
    "max_depth": 5,
    "learning_rate": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 0.8,
    "min_child_weight": 1.0,
}


@dataclass(frozen=True)
class Thresholds:
    """``mark`` (``mark_place``): a word is a name (place) when P(name or place) >= it;
    ``spread``: a word the model is that sure of marks every other occurrence of it in the
    person's notes whose probability is at least ``echo``."""

    mark: float = 0.05
    mark_place: float = 0.05
    spread: float = 0.5
    echo: float = 0.01


@dataclass
class TokenModel:
    booster: Any
    thresholds: Thresholds = field(default_factory=Thresholds)
    features: tuple[str, ...] = FEATURES

    def predict(self, rows: np.ndarray) -> np.ndarray:
        """Probabilities (n, 3) in :data:`LABELS` order."""
        import xgboost as xgb

        if len(rows) == 0:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        return np.asarray(self.booster.predict(xgb.DMatrix(rows, feature_names=list(self.features))))

    def to_json(self) -> dict[str, Any]:
        raw = self.booster.save_raw(raw_format="json")
        return {
            "features": list(self.features),
            "labels": list(LABELS),
            "thresholds": self.thresholds.__dict__,
            "booster": json.loads(bytes(raw).decode()),
        }

    @staticmethod
    def from_json(data: dict[str, Any], *, source: str = "model") -> TokenModel:
        import xgboost as xgb

        if tuple(data.get("features", ())) != FEATURES:
            raise DeidentificationError(
                f"{source}: model features differ from this version's ({len(FEATURES)} features); refit it"
            )
        booster = xgb.Booster()
        booster.load_model(bytearray(json.dumps(data["booster"]).encode()))
        return TokenModel(booster, Thresholds(**data["thresholds"]))


def fit_model(
    rows: np.ndarray, labels: np.ndarray, *, thresholds: Thresholds | None = None, seed: int = 0
) -> TokenModel:
    """Fit the trees on word rows and labels (indices into :data:`LABELS`)."""
    import xgboost as xgb

    p = PARAMS
    dtrain = xgb.DMatrix(rows, label=labels, feature_names=list(FEATURES))
    booster = xgb.train(
        {
            "objective": "multi:softprob",
            "num_class": len(LABELS),
            "max_depth": p["max_depth"],
            "eta": p["learning_rate"],
            "subsample": p["subsample"],
            "colsample_bytree": p["colsample_bytree"],
            "min_child_weight": p["min_child_weight"],
            "tree_method": "hist",
            "nthread": 2,
            "seed": seed,
            "verbosity": 0,
        },
        dtrain,
        num_boost_round=p["n_estimators"],
    )
    return TokenModel(booster, thresholds or Thresholds())


def save_model(model: TokenModel, path: Path | str) -> Path:
    from toolkit.io import atomic_write_text

    return atomic_write_text(Path(path), json.dumps(model.to_json()))


def load_model(path: Path | str | None = None) -> TokenModel:
    """The shipped model, or one written by :func:`save_model`."""
    if path is None:
        return _shipped()
    path = Path(path)
    if not path.is_file():
        raise DeidentificationError(f"{path}: model file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise DeidentificationError(f"{path}: not a model file (expected JSON)") from None
    return TokenModel.from_json(data, source=str(path))


@lru_cache(maxsize=1)
def _shipped() -> TokenModel:
    if not MODEL_PATH.is_file():
        raise DeidentificationError(
            f"{MODEL_PATH}: the shipped name/place model is missing; run tests/_scripts/fit_deid_model.py"
        )
    return load_model(MODEL_PATH)


def stack(tables: Sequence[np.ndarray]) -> np.ndarray:
    return np.vstack(tables) if tables else np.zeros((0, len(FEATURES)), dtype=np.float32)
