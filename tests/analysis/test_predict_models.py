"""Risk models: one estimator interface, binary models on evaluable persons, splines, nested search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from toolkit.analysis.predict import search as search_mod
from toolkit.analysis.predict.evaluate import cross_validate
from toolkit.analysis.predict.metrics import expit, horizon_label
from toolkit.analysis.predict.models import MODELS, make_model, ridge_logistic
from toolkit.errors import AnalysisError, ConvergenceError

H = 365.0


def _cohort(rng: np.random.Generator, n: int = 1200, u_shape: bool = False) -> pd.DataFrame:
    age = rng.normal(70, 10, n)
    lab = rng.lognormal(1.0, 0.5, n)
    sex = rng.choice(["F", "M"], n)
    lp = 0.04 * (age - 70) + 0.5 * np.log(lab) + 0.3 * (sex == "M")
    if u_shape:
        lp = 0.008 * (age - 70) ** 2 - 1.0
    t_event = rng.exponential(365 / (0.3 * np.exp(lp)))
    t_cens = rng.uniform(100, 1500, n)
    lab[rng.random(n) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "age": age,
            "lab": lab,
            "sex": sex,
            "time": np.minimum(t_event, t_cens),
            "event": (t_event <= t_cens).astype(int),
        }
    )


def _fit(kind: str, d: pd.DataFrame, **kw):  # type: ignore[no-untyped-def]
    m = make_model(kind, horizon=H, features=["age", "lab", "sex"], **kw)
    return m.fit(d[["age", "lab", "sex"]], d["time"].to_numpy(), d["event"].to_numpy())


def test_unpenalised_logistic_matches_statsmodels_on_evaluable_persons(rng: np.random.Generator) -> None:
    d = _cohort(rng)
    m = _fit("logistic", d, params={"penalty": 0.0})
    y = horizon_label(d["time"].to_numpy(), d["event"].to_numpy(), H)
    ok = ~np.isnan(y)
    assert m.n_fit_ == ok.sum() < len(d)  # persons censored before the horizon are left out
    x = pd.DataFrame(
        {
            "age": d["age"],
            "lab": d["lab"].fillna(m.pre_.medians_["lab"]),
            "sex": (d["sex"] == "M").astype(float),
        }
    )
    glm = sm.GLM(y[ok], sm.add_constant(x[ok].to_numpy()), family=sm.families.Binomial()).fit()
    expected = glm.predict(sm.add_constant(x.to_numpy()))
    assert m.predict_risk(d) == pytest.approx(expected, abs=1e-6)


def test_penalised_logistic_solves_its_ridge_score_equations(rng: np.random.Generator) -> None:
    d = _cohort(rng)
    lam = 25.0
    m = _fit("logistic", d, params={"penalty": lam})
    y = horizon_label(d["time"].to_numpy(), d["event"].to_numpy(), H)
    ok = ~np.isnan(y)
    z = m.pre_.transform(d[["age", "lab", "sex"]])[ok]
    mu = expit(z @ m.coef_ + m.intercept_)
    assert np.abs(z.T @ (y[ok] - mu) - lam * m.coef_).max() < 1e-4  # gradient of loglik - lam/2 |b|^2
    assert abs((y[ok] - mu).sum()) < 1e-4  # the intercept is not penalised


def test_splines_capture_a_u_shape_and_contributions_add_up(rng: np.random.Generator) -> None:
    d = _cohort(rng, n=3000, u_shape=True)
    lin = _fit("logistic", d, params={"penalty": 0.0})
    spl = _fit("logistic", d, params={"penalty": 0.0, "spline_knots": 5}, splines=["age"])
    assert any("age~s" in n for n in spl.pre_.names_)
    y = horizon_label(d["time"].to_numpy(), d["event"].to_numpy(), H)
    ok = ~np.isnan(y)

    def loglik(p: np.ndarray) -> float:
        p = np.clip(p, 1e-12, 1 - 1e-12)
        return float(np.sum(y[ok] * np.log(p[ok]) + (1 - y[ok]) * np.log(1 - p[ok])))

    assert loglik(spl.predict_risk(d)) > loglik(lin.predict_risk(d)) + 50
    contrib = spl.contributions(d)
    assert list(contrib.columns) == ["age", "lab", "sex"]  # spline columns grouped back to the input
    assert (contrib.sum(axis=1) + spl.intercept_).to_numpy() == pytest.approx(spl.predict_lp(d), abs=1e-9)
    imp = spl.importance(d)
    assert next(iter(imp)) == "age" and list(imp.values()) == sorted(imp.values(), reverse=True)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_every_model_has_the_one_interface(rng: np.random.Generator, kind: str) -> None:
    d = _cohort(rng, n=600)
    params = {"num_boost_round": 30} if kind.startswith("xgboost") else {}
    m = _fit(kind, d, params=params)
    risk = m.predict_risk(d)
    assert risk.shape == (len(d),) and ((risk > 0) & (risk < 1)).all()
    contrib = m.contributions(d)
    assert list(contrib.columns) == ["age", "lab", "sex"]
    if kind.startswith("xgboost"):  # SHAP values add up to the margin with the bias term
        bias = m.booster_.predict(m._dmatrix(d), pred_contribs=True)[:, -1]
        assert (contrib.sum(axis=1).to_numpy() + bias) == pytest.approx(m.predict_lp(d), abs=1e-4)
    if m.task == "survival":
        assert m.predict_risk_at(d, [H])[:, 0] == pytest.approx(risk, abs=1e-12)
    else:
        assert m.n_fit_ < len(d)
        with pytest.raises(AnalysisError, match="horizon only"):
            m.predict_risk_at(d, [H])


def test_search_picks_the_better_penalty_and_records_the_grid(rng: np.random.Generator) -> None:
    d = _cohort(rng)
    m = _fit("logistic", d, search={"penalty": [1e-3, 1e5]})
    assert m.best_params_ == {"penalty": 1e-3}  # 1e5 shrinks every coefficient to ~0
    assert [r["params"] for r in m.search_results_] == [{"penalty": 1e-3}, {"penalty": 1e5}]
    assert m.search_results_[0]["score"] < m.search_results_[1]["score"]  # IPCW Brier: lower is better


def test_search_happens_inside_each_training_fold(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _cohort(rng, n=500)
    seen: list[int] = []
    real = search_mod.select_params

    def spy(make, x, time, event, **kw):  # type: ignore[no-untyped-def]
        seen.append(len(x))
        return real(make, x, time, event, **kw)

    monkeypatch.setattr(search_mod, "select_params", spy)

    def make():  # type: ignore[no-untyped-def]
        return make_model(
            "logistic", horizon=H, features=["age", "lab", "sex"], search={"penalty": [0.1, 10.0]}
        )

    cross_validate(make, d, d["time"].to_numpy(), d["event"].to_numpy(), horizon=H, folds=5, seed=1)
    assert len(seen) == 5 and all(s < len(d) for s in seen)  # only training folds, never all persons
    assert sum(len(d) - s for s in seen) == len(d)  # the held-out folds partition the cohort


def test_model_errors_name_the_problem(rng: np.random.Generator) -> None:
    with pytest.raises(AnalysisError, match="unknown parameter 'depth'"):
        make_model("xgboost", horizon=H, params={"depth": 3})
    with pytest.raises(AnalysisError, match="unknown parameter 'alpha'"):
        make_model("logistic", horizon=H, search={"alpha": [1, 2]})
    with pytest.raises(AnalysisError, match="splines apply to linear models"):
        make_model("xgboost_survival", horizon=H, splines=["age"])
    with pytest.raises(AnalysisError, match="unknown model type"):
        make_model("forest", horizon=H)
    d = _cohort(rng, n=200)
    d["event"] = 0  # nobody has the event: the label has one class
    with pytest.raises(AnalysisError, match="single class"):
        _fit("logistic", d)
    with pytest.raises(ConvergenceError, match="did not converge"):  # perfect separation, no penalty
        z = np.r_[np.linspace(-2, -0.1, 20), np.linspace(0.1, 2, 20)][:, None]
        ridge_logistic(z, (z[:, 0] > 0).astype(float), 0.0)
    with pytest.raises(AnalysisError, match="splines: feature 'sex' is categorical"):
        _fit("logistic", _cohort(rng, n=200), splines=["sex"])
