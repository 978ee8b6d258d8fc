"""The contract's ``monitoring:`` block: defaults, bands, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from toolkit.agents.contract import load_contract
from toolkit.errors import AgentContractError

REPO = Path(__file__).resolve().parents[2]


def _with(tmp_path: Path, block: object) -> Path:
    contract = yaml.safe_load((REPO / "agents/hf-mortality/agent.yaml").read_text())
    contract["monitoring"] = block
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(contract))
    return tmp_path / "agent.yaml"


def test_the_flagship_declares_its_thresholds_and_owner() -> None:
    c = load_contract(REPO / "agents/hf-mortality")
    assert c.monitoring.psi == 0.2 and c.monitoring.calibration_slope == (0.8, 1.2)
    assert c.monitoring.card_notice and c.clinical_owner.name


def test_a_band_is_low_high_and_a_typo_is_named(tmp_path: Path) -> None:
    c = load_contract(_with(tmp_path, {"calibration_slope": [0.7, 1.3], "window": "2w"}))
    assert c.monitoring.calibration_slope == (0.7, 1.3) and c.monitoring.window == "2w"
    assert c.clinical_owner == c.owners[0]  # no clinical_owner: the first owner
    with pytest.raises(AgentContractError, match="monitoring: calibration_slope must be \\[low, high\\]"):
        load_contract(_with(tmp_path, {"calibration_slope": [1.2, 0.8]}))
    with pytest.raises(AgentContractError, match=r"monitoring\.psi_max: unknown key"):
        load_contract(_with(tmp_path, {"psi_max": 0.1}))
    with pytest.raises(AgentContractError, match=r"monitoring\.window"):
        load_contract(_with(tmp_path, {"window": "1mo"}))
