"""The MLflow pyfunc flavor of a Regent risk model: preprocessing, model and explanation in one
artifact.  ``predict`` returns the absolute risk at the model's horizon, the linear predictor and
one ``contrib_<input>`` column per input."""

from __future__ import annotations

import pickle
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from toolkit.analysis.predict.models import RiskModel


def predict_frame(model: RiskModel, frame: pd.DataFrame) -> pd.DataFrame:
    risk = model.predict_risk(frame)
    lp = model.predict_lp(frame)
    contrib = model.contributions(frame)
    out = pd.DataFrame({"risk": risk, "lp": lp}, index=frame.index)
    for c in contrib.columns:
        out[f"contrib_{c}"] = contrib[c].to_numpy()
    return out


class RegentRiskPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        with open(context.artifacts["risk_model"], "rb") as fh:
            self.model: RiskModel = pickle.load(fh)  # the bundle's hashes are verified before loading

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return predict_frame(self.model, pd.DataFrame(model_input))
