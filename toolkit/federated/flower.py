"""Run a federated study on Flower's deployment runtime: one SuperLink, one SuperNode per site.

Everything listens on loopback ports only and runs without TLS (``--insecure``): this launcher
is for a single machine (integration tests, demonstrations).  In a real deployment each
hospital starts its own SuperNode next to its registry (``regent federated node``) and the
coordinating centre runs the SuperLink; docs/privacy.md shows the commands.

Flower 1.42 pins older versions of FastAPI, Typer, Rich and protobuf than the rest of Regent,
so it lives in its own overlay folder (``.venv/flower``, installed by ``make install`` with
:mod:`tools.install_flower`) that is put first on ``PYTHONPATH`` only in
Flower's processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import FederatedError, SiteRefusal
from toolkit.federated.limits import RunOptions, SiteLimits
from toolkit.study.results import StudyResults, read_results

APP_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "regent-federated"
version = "1.0.0"
description = "Regent federated study (ServerApp coordinator, ClientApp site node)"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "regent"

[tool.flwr.app.components]
serverapp = "regent_flower_app:server"
clientapp = "regent_flower_app:client"

[tool.flwr.app.config]
study = ""
out = ""
status = ""
n_sites = 0
exact = false
time_base_days = 1.0
value_base_sd = 0.05
timeout_s = 300.0
"""
APP_MODULE = """\
from toolkit.federated import flower_app

client = flower_app.client
server = flower_app.server
"""


def runtime_dir() -> Path:
    """The Flower overlay: ``$REGENT_FLOWER_RUNTIME`` or ``<venv>/flower``."""
    return Path(os.environ.get("REGENT_FLOWER_RUNTIME") or Path(sys.prefix) / "flower")


def runtime_available() -> bool:
    return (runtime_dir() / "bin" / "flower-superlink").exists()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FederatedError(
                f"{what} exited (status {proc.returncode}) before it listened on port {port}"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise FederatedError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:g} s")


def _quoted(value: str, what: str) -> str:
    if "'" in value:
        raise FederatedError(f"{what} must not contain a single quote: {value!r}")
    return f"'{value}'"


def _config_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return _quoted(str(v), "a Flower config value")


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


class FlowerDeployment:
    """A SuperLink and SuperNodes on loopback, started and stopped together (a context manager)."""

    def __init__(
        self,
        sites: Mapping[str, Path],
        *,
        limits: Mapping[str, SiteLimits] | SiteLimits | None = None,
        work_dir: Path | None = None,
    ) -> None:
        if not runtime_available():
            raise FederatedError(
                f"the Flower runtime is not installed in {runtime_dir()}; run `make install` "
                "(it installs flwr 1.42 there with python tools/install_flower.py)"
            )
        self.sites = {name: Path(p).resolve() for name, p in sites.items()}
        for name, p in self.sites.items():
            if not p.is_file():
                raise FederatedError(f"site {name}: registry {p} not found")
        self.limits = limits
        self._own_dir = work_dir is None
        self.work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="regent-flower-"))
        self.procs: list[_Proc] = []
        self.port = 0

    # --- environment ------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        rt = runtime_dir()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(rt), *filter(None, [env.get("PYTHONPATH")])])
        env["PATH"] = os.pathsep.join(
            [str(rt / "bin"), str(Path(sys.executable).parent), env.get("PATH", "")]
        )
        env["FLWR_HOME"] = str(self.work / "flwr-home")
        env["FLWR_TELEMETRY_ENABLED"] = "0"  # nothing leaves this machine
        env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
        env["FLWR_SUPEREXEC_TASK_POLL_INTERVAL"] = "0.1"  # start ClientApps promptly
        env["PYTHONWARNINGS"] = "ignore"
        return env

    def _start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as fh:
            popen = subprocess.Popen(
                args,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.work,
                start_new_session=True,  # its own process group: stopped with everything it spawns
            )
        self.procs.append(_Proc(name, popen, log))
        return popen

    def _site_limits(self, site: str) -> SiteLimits:
        if isinstance(self.limits, SiteLimits):
            return self.limits
        if self.limits and site in self.limits:
            return self.limits[site]
        return SiteLimits()

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        rt = runtime_dir() / "bin"
        home = self.work / "flwr-home"
        home.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        (home / "config.toml").write_text(
            f'[superlink]\ndefault = "regent"\n\n[superlink.regent]\naddress = "127.0.0.1:{self.port}"\n'
            "insecure = true\n",
            encoding="utf-8",
        )
        link = self._start(
            "superlink",
            [
                str(rt / "flower-superlink"),
                "--insecure",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--disable-runtime-dependency-installation",
            ],
        )
        _wait_port(self.port, link, "the SuperLink")
        for site, registry in sorted(self.sites.items()):
            cache = self.work / "site-cache" / site
            cfg = {
                "site": site,
                "registry": str(registry),
                "cache": str(cache),
                **self._site_limits(site).to_dict(),
            }
            node_port = _free_port()
            node = self._start(
                f"supernode-{site}",
                [
                    str(rt / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{self.port}",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(node_port),
                    "--node-config",
                    " ".join(f"{k}={_config_value(v)}" for k, v in cfg.items()),
                ],
            )
            _wait_port(node_port, node, f"the SuperNode of site {site}")

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.popen.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in self.procs:
            try:
                p.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(timeout=5)
        self.procs.clear()

    def kill_site(self, site: str) -> None:
        """Stop one site's SuperNode (fault-injection for tests: a site that drops out)."""
        for p in self.procs:
            if p.name == f"supernode-{site}" and p.popen.poll() is None:
                os.killpg(p.popen.pid, signal.SIGKILL)
                p.popen.wait(timeout=10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log.read_text(errors='replace')[-3000:]}" for p in self.procs)

    def __enter__(self) -> FlowerDeployment:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.work, ignore_errors=True)

    # --- a run ------------------------------------------------------------------------------
    def run(
        self, study: Path | str, *, out: Path | str, options: RunOptions, timeout_s: float = 600.0
    ) -> dict[str, Any]:
        """Submit the study with ``flwr run`` and wait; returns the ServerApp's status."""
        app = self.work / "app"
        app.mkdir(parents=True, exist_ok=True)
        (app / "pyproject.toml").write_text(APP_PYPROJECT, encoding="utf-8")
        (app / "regent_flower_app.py").write_text(APP_MODULE, encoding="utf-8")
        status = self.work / f"status-{time.time_ns()}.json"
        run_config = {
            "study": str(Path(study).resolve()),
            "out": str(Path(out).resolve()),
            "status": str(status),
            "n_sites": len(self.sites),
            "exact": options.exact,
            "time_base_days": float(options.time_base_days),
            "value_base_sd": float(options.value_base_sd),
            "timeout_s": float(options.timeout_s),
        }
        cmd = [
            str(runtime_dir() / "bin" / "flwr"),
            "run",
            str(app),
            "regent",
            "--stream",
            "--run-config",
            " ".join(f"{k}={_config_value(v)}" for k, v in run_config.items()),
        ]
        log = self.work / "logs" / "flwr-run.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                cmd,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                cwd=self.work,
                start_new_session=True,
            )
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None and not status.exists():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            if proc.poll() is None:  # the status is written; give the log stream a moment, then stop it
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(timeout=10)
        if not status.exists():
            raise FederatedError(
                f"the Flower run ended without a result within {timeout_s:g} s; logs in {self.work / 'logs'}"
            )
        result: dict[str, Any] = json.loads(status.read_text(encoding="utf-8"))
        return result


def _raise(status: Mapping[str, Any]) -> None:
    cls = SiteRefusal if status.get("type") == "SiteRefusal" else FederatedError
    raise cls(str(status.get("error")), site=status.get("site"), round_no=status.get("round"))


def run_flower(
    study: Path | str,
    sites: Mapping[str, Path],
    *,
    out: Path | str,
    options: RunOptions | None = None,
    limits: Mapping[str, SiteLimits] | SiteLimits | None = None,
    timeout_s: float = 600.0,
) -> StudyResults:
    """Start a loopback deployment, run the study on it, stop everything; return results.json."""
    options = options or RunOptions()
    with FlowerDeployment(sites, limits=limits) as dep:
        status = dep.run(study, out=out, options=options, timeout_s=timeout_s)
    if not status.get("ok"):
        _raise(status)
    return read_results(Path(out) / "results.json")


@contextmanager
def deployment(sites: Mapping[str, Path], **kw: Any) -> Iterator[FlowerDeployment]:
    with FlowerDeployment(sites, **kw) as dep:
        yield dep
