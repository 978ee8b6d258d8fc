"""An hf-mortality-like agent, developed once per session on a synthetic development registry."""

from __future__ import annotations

import pytest

from tests.monitor.synthetic import Developed, develop_agent

__all__ = ["Developed"]


@pytest.fixture(scope="session")
def hf_agent(tmp_path_factory: pytest.TempPathFactory) -> Developed:
    """Registry (3,000 persons, 2014-2022) -> study run tracked in MLflow -> packaged bundle."""
    return develop_agent(tmp_path_factory.mktemp("hf-monitor"))
