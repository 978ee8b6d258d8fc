"""XGBoost models trained with xgboost.spark give the single-machine fit's cross-validated metrics.

Known-truth data (a Weibull proportional-hazards simulation with missing values), the same
development plan (folds, seeds, evaluation) run twice: once with ``xgboost.train`` on the driver,
once with every booster trained on the session's local Spark (two workers).  Tolerance: 0.02 on
the cross-validated C-index (Harrell's and Uno's) and on the AUROC at the horizon, 0.01 on the
Brier score -- the distributed fit differs by its quantile sketch (and, for survival:cox, by
risk sets within each worker's rows), not by the evaluation, which is the same code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.analysis.predict.develop import ModelPlan, develop_model
from toolkit.analysis.predict.distributed import SparkXGBTrainer, current_trainer, distributed_training

FEATURES = ("x1", "x2", "x3", "x4")


def simulated(rng: np.random.Generator, n: int = 2500) -> pd.DataFrame:
    x = rng.normal(size=(n, 4))
    lp = 0.8 * x[:, 0] - 0.6 * x[:, 1] + 0.4 * np.maximum(x[:, 2], 0)
    death = 365 * (-np.log(rng.uniform(size=n)) / (0.35 * np.exp(lp))) ** (1 / 1.3)
    censor = rng.uniform(200, 1500, size=n)
    frame = pd.DataFrame(x, columns=list(FEATURES))
    frame.loc[rng.uniform(size=n) < 0.1, "x2"] = np.nan  # missing values go through both paths
    return frame.assign(
        person_id=np.arange(n),
        index_time=pd.Timestamp("2020-01-01"),
        time=np.minimum(death, censor).round(),
        event=(death <= censor).astype(int),
    )


def plan(kind: str) -> ModelPlan:
    return ModelPlan(
        name=kind,
        kind=kind,
        features=FEATURES,
        horizon=365.0,
        params={"num_boost_round": 60, "max_depth": 3, "eta": 0.1, "seed": 3},
        cv_folds=3,
        seed=3,
        bootstrap=20,
        optimism=0,
    )


def test_no_trainer_outside_the_block() -> None:
    assert current_trainer() is None
    with distributed_training(SparkXGBTrainer(object(), min_rows=10)):
        trainer = current_trainer()
        assert trainer is not None and trainer.wants(10) and not trainer.wants(9)
    assert current_trainer() is None


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["xgboost", "xgboost_survival"])
def test_distributed_fit_gives_the_single_machine_metrics(
    kind: str, spark: Any, rng: np.random.Generator
) -> None:
    frame = simulated(rng)
    single, res_single, _ = develop_model(frame, plan(kind))
    with distributed_training(SparkXGBTrainer(spark, min_rows=0, num_workers=2)):
        dist, res_dist, _ = develop_model(frame, plan(kind))
    assert single.trained_on_ == "driver" and dist.trained_on_ == "spark"  # type: ignore[attr-defined]
    a, b = res_single["metrics"], res_dist["metrics"]
    assert a["c_harrell_mean"] > 0.7, "the simulation should be learnable"
    for key, tolerance in (
        ("c_harrell_mean", 0.02),
        ("c_uno_mean", 0.02),
        ("auroc_mean", 0.02),
        ("brier_mean", 0.01),
    ):
        assert abs(a[key] - b[key]) < tolerance, (key, a[key], b[key])
    # the distributed booster is a plain booster: it predicts and explains on the driver
    risk = dist.predict_risk(frame.head(50))
    assert np.all((risk > 0) & (risk < 1))
    assert list(dist.contributions(frame.head(5)).columns) == list(FEATURES)


@pytest.mark.spark
def test_small_matrices_stay_on_the_driver(spark: Any, rng: np.random.Generator) -> None:
    frame = simulated(rng, 600)
    with distributed_training(SparkXGBTrainer(spark, min_rows=10_000)):
        model, _, _ = develop_model(frame, plan("xgboost"))
    assert model.trained_on_ == "driver"  # type: ignore[attr-defined]
