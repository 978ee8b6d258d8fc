"""Install Flower's deployment runtime into an overlay folder beside the virtual environment.

``flwr`` 1.42 pins FastAPI < 0.139, Typer 0.20, Rich < 15 and protobuf < 7, below what the rest
of Regent runs with.  Installing it into the main environment would downgrade those for every
other part of Regent, so ``make install`` runs::

    python tools/install_flower.py .venv/flower

which asks pip which packages flwr needs *in addition to or instead of* what the environment
already has (a dry run against it), and installs exactly those, without dependencies, into the
overlay.  The launcher (:mod:`.flower`) puts the overlay first on ``PYTHONPATH`` for Flower's
processes only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

FLWR = "flwr==1.42.0"  # the version whose deployment runtime (HTTP SuperLink/SuperNode) Regent uses


def overlay_requirements() -> list[str]:
    """``name==version`` of every package pip would install or change for flwr here."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--report", str(report), FLWR],
            check=True,
        )
        data = json.loads(report.read_text(encoding="utf-8"))
    return [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in data.get("install", [])]


def install(target: Path) -> Path:
    """Install the overlay into ``target`` (replacing an older one); returns it."""
    target = Path(target)
    stamp = target / ".regent-flower"
    if stamp.exists() and stamp.read_text(encoding="utf-8").strip() == FLWR and (target / "bin").exists():
        return target
    reqs = overlay_requirements()
    tmp = target.with_name(target.name + ".tmp")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(tmp), *reqs],
        check=True,
    )
    (tmp / ".regent-flower").write_text(FLWR + "\n", encoding="utf-8")
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.replace(target)
    return target


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(sys.prefix) / "flower"
    print(f"Flower runtime: {install(target)}")


if __name__ == "__main__":
    main()
