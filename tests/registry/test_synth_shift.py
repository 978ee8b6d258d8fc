"""``regent registry synth --shift``: a later period with the documented case mix and hazard."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from toolkit.cli.main import app
from toolkit.errors import RegistryError
from toolkit.registry.store import Registry
from toolkit.registry.synth import heart_failure as hf


def test_the_shift_moves_the_case_mix_and_the_hazard_as_documented() -> None:
    def draw(shift: hf.Shift | None) -> object:
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(3).spawn(2)]
        return hf._draw_persons(rngs[0], 40_000, 1, 1, rngs[1], period=hf.LATER_PERIOD, shift=shift)

    base, shifted = draw(None), draw(hf.Shift())
    s = hf.Shift()
    # the same random numbers: differences are the shift alone
    assert (shifted["male"] == base["male"]).all() and (shifted["index_s"] == base["index_s"]).all()
    assert shifted["age"].mean() - base["age"].mean() == pytest.approx(s.age_years, abs=0.1)
    assert shifted["hfref"].mean() == pytest.approx(s.hfref_probability, abs=0.01)
    assert (
        base["hfref"].mean() == pytest.approx(0.5, abs=0.01)
        and shifted["ckd"].mean() > base["ckd"].mean() + 0.1
    )
    # the truth's risk uses the shifted baseline hazard: 1 - exp(-2.5 lambda e^lp)
    lam = hf.WEIBULL_LAMBDA * s.baseline_hazard_ratio
    assert np.allclose(shifted["risk_1y"], 1 - np.exp(-lam * np.exp(shifted["lp"])))
    # and the death times follow it: the share dead within a year matches the mean true risk
    assert (shifted["death_years"] <= 1).mean() == pytest.approx(shifted["risk_1y"].mean(), abs=0.01)
    index = shifted["index_s"].to_numpy()
    assert index.min() >= hf._secs(dt.datetime(2025, 1, 1)) and index.max() < hf._secs(
        dt.datetime(2026, 1, 1)
    )
    half = hf.Shift(strength=0.5)
    assert half.age == 4.0 and half.hazard_ratio == pytest.approx(2.5**0.5)


def test_synth_shift_writes_the_period_and_the_shift_beside_the_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["registry", "synth", "--patients", "200", "--seed", "4", "--no-notes", "--no-images", "--shift",
         "--out", str(tmp_path / "later.duckdb")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with Registry(tmp_path / "later.duckdb") as reg:
        meta = reg.metadata()
        last = reg.sql("SELECT MAX(end_time) AS t FROM observation_period")["t"].iloc[0]
    assert (
        meta["data_cutoff"].startswith("2026-12-31")
        and json.loads(meta["shift"])["baseline_hazard_ratio"] == 2.5
    )
    assert last <= np.datetime64("2026-12-31")
    truth = json.loads((tmp_path / "later.truth.json").read_text())
    assert truth["shift"]["effective_weibull_lambda"] == pytest.approx(hf.WEIBULL_LAMBDA * 2.5)
    assert truth["index_period"] == ["2025-01-01", "2026-01-01"]


def test_a_default_registry_has_no_shift_metadata_and_a_period_must_be_ordered(tmp_path: Path) -> None:
    path = hf.synthesize(tmp_path / "dev.duckdb", hf.SynthConfig(50, 1, 1, notes=False, images=False))
    with Registry(path) as reg:
        assert "shift" not in reg.metadata() and "data_cutoff" not in reg.metadata()  # digests unchanged
    with pytest.raises(RegistryError, match="index_start < index_end <= data_cutoff"):
        hf.Period.parse("2026-01-01:2025-01-01:2027-01-01")
    with pytest.raises(RegistryError, match="START:END:CUTOFF"):
        hf.Period.parse("2025-01-01:2026-01-01")
    with pytest.raises(RegistryError, match="strength"):
        hf.Shift(strength=2)
