"""The step cache and run state of a study run, under ``OUT/.cache``.

Each finished step is pickled under a key that hashes its own spec and its inputs' keys.  The
run state (``state.json``: ``running`` -> ``finished``/``failed``, the finished steps, the tracker
run) lets a later run see that an earlier one was killed, re-use its finished steps and close its
tracker run as KILLED.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

from toolkit.errors import StudySpecError
from toolkit.io import atomic_write_json
from toolkit.study.tracker import Tracker


class StepCache:
    def __init__(self, root: Path, enabled: bool) -> None:
        self.root = root / ".cache"
        self.enabled = enabled
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Any | None:
        p = self.root / f"{key}.pkl"
        if not self.enabled or not p.exists():
            return None
        with p.open("rb") as fh:
            return pickle.load(fh)  # our own cache files, written below

    def put(self, key: str, value: Any) -> None:
        tmp = self.root / f".{key}.tmp"
        with tmp.open("wb") as fh:
            pickle.dump(value, fh)
        tmp.replace(self.root / f"{key}.pkl")

    # --- the run state: which run owns OUT, which steps it finished, how it ended ---------------
    @property
    def state_path(self) -> Path:
        return self.root / "state.json"

    def claim(self) -> dict[str, Any] | None:
        """Take OUT for this process; return the state of an earlier run that was interrupted.

        Refuses when a live process is running a study into the same OUT.
        """
        self._state: dict[str, Any] = {"status": "starting", "pid": os.getpid(), "steps": []}
        try:
            old = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict) or old.get("status") not in ("running", "interrupted"):
            return None  # "interrupted": stopped by Ctrl-C/SIGTERM, its tracked run already KILLED
        pid = int(old.get("pid") or 0)
        if old.get("status") == "running" and pid and pid != os.getpid() and _alive(pid):
            raise StudySpecError(
                f"{self.root.parent}: another study run (process {pid}) is writing here; "
                "wait for it to finish or choose another --out"
            )
        return old

    def state(self, *, status: str | None = None, step: str | None = None, run_id: str | None = None) -> None:
        if status is not None:
            self._state["status"] = status
        if run_id is not None:
            self._state["run_id"] = run_id
        if step is not None and step not in self._state["steps"]:
            self._state["steps"].append(step)
        atomic_write_json(self.state_path, self._state)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def close_interrupted(tracker: Tracker, old_run_id: str, new_run_id: str | None) -> None:
    """An interrupted run could not end its tracker run; end it now so it is never left RUNNING."""
    close = getattr(tracker, "close_run", None)
    if close is not None:
        close(
            old_run_id,
            "KILLED",
            f"the process ended before the run finished; resumed by run {new_run_id or '(untracked)'}",
        )
