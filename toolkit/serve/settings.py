"""Server settings, from the environment (``REGENT_*``) or a YAML file; nothing is read at import."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from toolkit.specs import Frozen, load_model


class Settings(Frozen):
    agents_dir: Path = Field(Path("dist/agents"), description="Folder of agent bundles to serve.")
    base_url: str | None = Field(None, description="Public base URL (JWT 'aud' is checked against it).")
    max_body_bytes: int = Field(1_000_000, description="Requests larger than this are refused (413).")
    feedback_path: Path | None = Field(None, description="JSON-lines file for card feedback.")
    cors_origins: list[str] = Field(default_factory=list)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        file = os.environ.get("REGENT_SETTINGS")
        base = load_model(cls, Path(file)).model_dump() if file else {}
        env = {
            "agents_dir": os.environ.get("REGENT_AGENTS_DIR"),
            "base_url": os.environ.get("REGENT_BASE_URL"),
        }
        base.update({k: v for k, v in env.items() if v is not None})
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(base)
