"""Helpers shared by the study tests."""

from __future__ import annotations


def strip_run_ids(results: dict) -> dict:  # type: ignore[type-arg]
    """results.json without what differs between two runs of the same study: the tracker's ids."""
    out = {k: v for k, v in results.items() if k != "mlflow_run_id"}
    out["models"] = {
        name: {k: v for k, v in m.items() if k not in ("mlflow_run_id", "model_uri", "model_version")}
        for name, m in results.get("models", {}).items()
    }
    return out
