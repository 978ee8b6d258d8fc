"""Docs that run: every code block of README.md is executed, in order, in a scratch folder that
holds the repository's studies/ and agents/ (so ``make demo`` comes first and the tours run
after it, as the text says).

A block that cannot run as written says so, and why, in an HTML comment right above it (invisible
when the README is rendered)::

    <!-- docs-test
    skip "mlflow ui": it starts a server that runs until stopped
    run "make demo" as "regent demo": the Makefile's demo target without its install step
    background "regent serve": it runs until stopped; the lines after it talk to it
    set RUN_A RUN_B: the two latest runs of regent/hf_mortality
    output of "make demo"
    -->

``skip``/``run ... as``/``background`` apply to the lines that start with the quoted text; ``set``
names placeholders this test fills in; ``output of`` marks a plain block as what a command
prints (each of its lines must appear in that output).  Every directive needs its reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
_BLOCK = re.compile(
    r"(?:<!-- docs-test(?P<directives>.*?)-->\s*\n)?```(?P<lang>[a-z]*)\n(?P<body>.*?)```", re.S
)
_DIRECTIVE = re.compile(
    r'^(?:(?P<kind>skip|background) "(?P<prefix>[^"]+)"|run "(?P<run>[^"]+)" as "(?P<as>[^"]+)"'
    r'|set (?P<names>[A-Z_ ]+)|output of "(?P<of>[^"]+)")(?::\s*(?P<why>.+))?$'
)


@dataclass
class Block:
    lang: str
    body: str
    line: int
    skip: dict[str, str] = field(default_factory=dict)
    run_as: dict[str, str] = field(default_factory=dict)
    background: str | None = None
    placeholders: list[str] = field(default_factory=list)
    output_of: str | None = None


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown file with their docs-test directives."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in _BLOCK.finditer(text):
        b = Block(m["lang"], m["body"], text[: m.start("body")].count("\n") + 1)
        for raw in (m["directives"] or "").strip().splitlines():
            d = _DIRECTIVE.match(raw.strip())
            assert d is not None, f"{path.name}:{b.line}: unreadable docs-test directive {raw!r}"
            assert d["why"] or d["of"], f"{path.name}:{b.line}: directive without a reason: {raw!r}"
            if d["kind"] == "skip":
                b.skip[d["prefix"]] = d["why"]
            elif d["kind"] == "background":
                b.background = d["prefix"]
            elif d["run"]:
                b.run_as[d["run"]] = d["as"]
            elif d["names"]:
                b.placeholders = d["names"].split()
            else:
                b.output_of = d["of"]
        out.append(b)
    return out


def test_the_directives_are_read() -> None:
    found = blocks(REPO / "README.md")
    assert any(b.run_as.get("make demo") == "regent demo" for b in found)
    assert any("mlflow ui" in b.skip for b in found)
    assert any(b.output_of == "make demo" for b in found)
    commands = [b for b in found if b.lang in ("bash", "python")]
    assert commands and all(b.lang in ("bash", "python", "") for b in found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _lines(block: Block) -> list[str]:
    """The block's shell lines (continuations joined), with skips dropped and replacements made."""
    joined = block.body.replace("\\\n", " ")
    out = []
    for line in joined.splitlines():
        if any(line.startswith(p) for p in block.skip):
            continue
        for old, new in block.run_as.items():
            if line.startswith(old):
                line = new + line[len(old) :]
        out.append(line)
    return out


def _placeholders(names: list[str], root: Path) -> dict[str, str]:
    """RUN_A, RUN_B: the two latest runs of the hf_mortality experiment (oldest first)."""
    code = (
        "import mlflow, warnings; warnings.simplefilter('ignore');"
        "from mlflow.tracking import MlflowClient;"
        "mlflow.set_tracking_uri('sqlite:///mlruns/mlflow.db'); c = MlflowClient();"
        "e = c.get_experiment_by_name('regent/hf_mortality');"
        "runs = c.search_runs([e.experiment_id], \"tags.`mlflow.parentRunId` IS NULL\", order_by=['start_time DESC']);"
        "print(' '.join(r.info.run_id for r in runs[:2][::-1]))"
    )
    assert names == ["RUN_A", "RUN_B"], names
    ids = subprocess.run(
        [str(BIN / "python"), "-c", code], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(ids) == 2, ids
    return dict(zip(names, ids, strict=True))


def _bash(block: Block, root: Path, env: dict[str, str]) -> str:
    lines = _lines(block)
    server: subprocess.Popen[bytes] | None = None
    if block.background is not None:
        port = str(_free_port())
        lines = [line.replace("8080", port) for line in lines]
        start = next(i for i, line in enumerate(lines) if line.startswith(block.background))
        log = root / "background.log"
        with log.open("wb") as sink:
            server = subprocess.Popen(
                ["bash", "-c", lines.pop(start)], cwd=root, env=env, stdout=sink, stderr=sink
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", int(port))) == 0:
                    break
            assert server.poll() is None, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
    try:
        r = subprocess.run(
            ["bash", "-c", "set -eo pipefail\n" + "\n".join(lines)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        if server is not None:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
    assert r.returncode == 0, f"README.md:{block.line}: failed\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout + r.stderr


@pytest.mark.slow
def test_every_block_of_the_readme_runs(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    root.mkdir()
    for folder in ("studies", "agents"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", ".ipynb*"))
    (root / ".venv").symlink_to(REPO / ".venv")
    env = {
        "PATH": f"{BIN}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "PYTHONWARNINGS": "ignore",
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),  # the checkout under test, whatever .venv was installed from
    }
    outputs: dict[str, str] = {}
    ran = 0
    for block in blocks(REPO / "README.md"):
        if block.lang == "":
            if block.output_of is not None:
                printed = outputs[block.output_of]
                for line in block.body.splitlines():
                    assert line.strip() in printed, f"README.md:{block.line}: {line!r} is not what it prints"
            continue
        if block.lang == "python":
            script = root / f"block_{block.line}.py"
            script.write_text(block.body, encoding="utf-8")
            r = subprocess.run(
                [str(BIN / "python"), script.name],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=1200,
            )
            assert r.returncode == 0, f"README.md:{block.line}: failed\n{r.stderr[-3000:]}"
            ran += 1
            continue
        printed = ""
        if block.placeholders:  # the lines before the first placeholder run first: they make the runs
            lines = block.body.splitlines(keepends=True)
            first = next(i for i, line in enumerate(lines) if any(n in line for n in block.placeholders))
            printed += _bash(replace(block, body="".join(lines[:first])), root, env)
            tail = "".join(lines[first:])
            for name, value in _placeholders(block.placeholders, root).items():
                tail = tail.replace(name, value)
            block = replace(block, body=tail)
        printed += _bash(block, root, env)
        for line in block.body.splitlines():
            if line.strip() and not any(line.startswith(p) for p in block.skip):
                outputs.setdefault(line.split("#")[0].strip(), printed)
        ran += 1
    assert ran >= 6
    # what the engineer's tour shows: the service in discovery, and a card with the risk
    served = outputs["curl -s localhost:8080/cds-services | jq"]
    assert '"id": "hf-mortality"' in served and '"1-year risk of death' in served, served[-2000:]
    # what the tours promise: the rerun re-used the demo's model version (hf-mortality-1.0.1)
    results = json.loads((root / "out" / "hf_mortality" / "results.json").read_text())
    assert results["models"]["cox_1y"]["model_version"] == 1
    assert (root / "dist" / "agents" / "hf-mortality-1.0.1" / "SHA256SUMS").is_file()
