"""Distributed XGBoost training on Spark (``xgboost.spark``) for the XGBoost risk models.

When a study runs on the Spark engine, the runner puts a :class:`SparkXGBTrainer` in effect for
its model steps (:func:`distributed_training`).  An XGBoost model whose training matrix has at
least ``min_rows`` rows then trains its booster with ``xgboost.spark`` across ``num_workers``
Spark tasks instead of ``xgboost.train`` on the driver; everything else -- preprocessing inside
each fold, cross-validation, calibration, the bootstrap, SHAP contributions and prediction --
is the same code on the same booster type, so the evaluation is the same.

What differs is the fit itself: each worker builds histograms on its own rows and XGBoost's
collective sums them, so the trees are the single-machine trees up to the quantile sketch; the
``survival:cox`` objective computes each risk set within a worker's rows (a Cox likelihood
stratified by partition), and its ``cox-nloglik`` metric has no distributed form, so training is
monitored with ``rmse`` there.  ``tests/analysis/test_distributed_xgboost.py`` measures the
difference in cross-validated metrics against the single-machine fit.

The trainer is held in a context variable rather than on the model so a fitted model never
carries a Spark session (models are pickled into caches, MLflow and agent bundles).

>>> with distributed_training(SparkXGBTrainer(spark, min_rows=0)):  # doctest: +SKIP
...     model.fit(x, time, event)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from toolkit.errors import AnalysisError

#: xgboost.train's names -> xgboost.spark's (scikit-learn style) names.
_SPARK_NAMES = {"eta": "learning_rate", "seed": "random_state"}
#: Parameters xgboost.spark sets itself (each worker uses its task's cores).
_DROPPED = frozenset({"nthread"})
#: Training metrics that have a distributed form, for objectives whose default has none.
_DISTRIBUTED_METRIC = {"cox-nloglik": "rmse"}


@dataclass(frozen=True)
class SparkXGBTrainer:
    """Train XGBoost boosters with ``xgboost.spark`` on ``spark`` for matrices of >= ``min_rows``."""

    spark: Any
    min_rows: int = 1_000_000
    num_workers: int = 2

    def wants(self, n_rows: int) -> bool:
        return n_rows >= self.min_rows

    def train(self, params: Mapping[str, Any], z: np.ndarray, label: np.ndarray, rounds: int) -> Any:
        """A booster trained on ``(z, label)`` with ``params`` (xgboost.train's names)."""
        try:
            from xgboost.spark import SparkXGBClassifier, SparkXGBRegressor
        except ImportError as exc:  # pragma: no cover - xgboost ships it; pyspark is the extra
            raise AnalysisError(f"distributed XGBoost needs xgboost.spark and pyspark ({exc})") from None
        cols = [f"f{i}" for i in range(z.shape[1])]
        frame = pd.DataFrame(z, columns=cols).assign(label=label)
        data = self.spark.createDataFrame(frame).repartition(self.num_workers)
        kwargs: dict[str, Any] = {}
        for key, value in params.items():
            if key in _DROPPED:
                continue
            if key == "eval_metric":
                value = _DISTRIBUTED_METRIC.get(value, value)
            kwargs[_SPARK_NAMES.get(key, key)] = value
        objective = kwargs.get("objective")
        estimator = SparkXGBClassifier if objective == "binary:logistic" else SparkXGBRegressor
        if objective == "binary:logistic":
            kwargs.pop("objective")  # the classifier sets it
        model = estimator(
            features_col=cols,
            label_col="label",
            num_workers=self.num_workers,
            n_estimators=rounds,
            missing=np.nan,
            **kwargs,
        ).fit(data)
        booster = model.get_booster()
        booster.feature_names = None  # the caller names the design columns
        return booster


_TRAINER: ContextVar[SparkXGBTrainer | None] = ContextVar("regent_xgboost_trainer", default=None)


@contextmanager
def distributed_training(trainer: SparkXGBTrainer | None) -> Iterator[None]:
    """Put ``trainer`` in effect for the XGBoost fits inside the block (``None``: single machine)."""
    token = _TRAINER.set(trainer)
    try:
        yield
    finally:
        _TRAINER.reset(token)


def current_trainer() -> SparkXGBTrainer | None:
    return _TRAINER.get()
