"""``regent serve``, ``regent mcp`` and ``regent audit``: thin commands over toolkit.serve."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from toolkit.errors import SpecError

audit_app = typer.Typer(help="Verify and read the serving audit log.", no_args_is_help=True)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve_command(
    agents: Annotated[Path | None, typer.Option(help="Folder of agent bundles")] = None,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8080,
    workers: Annotated[int, typer.Option(min=1)] = 1,
    settings: Annotated[Path | None, typer.Option(help="Settings YAML (see docs/serving.md)")] = None,
    issuers: Annotated[Path | None, typer.Option(help="Issuers YAML: iss + JWKS per CDS client")] = None,
    audit: Annotated[Path | None, typer.Option(help="SQLite audit log")] = None,
    demo: Annotated[Path | None, typer.Option(help="Enable /demo with <DIR>/<agent>/examples/*.json")] = None,
    auth: Annotated[str | None, typer.Option(help="'required' (default) or 'off' (loopback only)")] = None,
) -> None:
    """Serve CDS Hooks 2.0, REST and MCP (streamable HTTP) for every bundle in --agents."""
    import uvicorn

    from toolkit.serve.settings import Settings

    env = {
        "REGENT_SETTINGS": settings,
        "REGENT_AGENTS_DIR": agents,
        "REGENT_ISSUERS_FILE": issuers,
        "REGENT_AUDIT_PATH": audit,
        "REGENT_DEMO_DIR": demo,
        "REGENT_AUTH": auth,
    }
    for key, value in env.items():
        if value is not None:
            os.environ[key] = str(Path(value).resolve()) if isinstance(value, Path) else value
    resolved = Settings.from_env()  # validate once here: a bad file fails before any worker starts
    if resolved.auth == "off" and host not in LOOPBACK_HOSTS:
        raise SpecError(f"auth: 'off' is allowed only on a loopback host; got --host {host}")
    if workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="regent-metrics-")
    from toolkit.serve.server import LOG_CONFIG, uvicorn_options

    # the workers build their protocol from an import string: the limits travel in the environment
    os.environ["REGENT_MAX_HEADER_BYTES"] = str(resolved.max_header_bytes)
    os.environ["REGENT_HEADER_TIMEOUT_S"] = str(resolved.header_timeout_s)
    options = {**uvicorn_options(resolved), "http": "toolkit.serve.server:LimitedHttpToolsProtocol"}
    uvicorn.run(
        "toolkit.serve.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=LOG_CONFIG,
        log_level="warning",
        **options,
    )


def mcp_command(
    agents: Annotated[Path, typer.Option(help="Folder of agent bundles")] = Path("dist/agents"),
    audit: Annotated[Path | None, typer.Option(help="SQLite audit log")] = None,
) -> None:
    """Serve the agents as MCP tools over stdio (for a local MCP client)."""
    import anyio

    from toolkit.serve.mcp import run_stdio
    from toolkit.serve.service import Runtime
    from toolkit.serve.settings import Settings

    # stdio: the client started this process, so there is no network caller to authenticate
    rt = Runtime.start(Settings(agents_dir=agents, audit_path=audit, auth="off", mcp_http=False))
    anyio.run(run_stdio, rt)


@audit_app.command("verify")
def audit_verify(
    path: Path,
    anchor: Annotated[
        str | None, typer.Option(help="'<seq>:<hash>' from an earlier 'regent audit head'")
    ] = None,
    key: Annotated[
        Path | None, typer.Option(help="The server's audit_key_file: check every record's MAC")
    ] = None,
) -> None:
    """Walk the hash chain (and, with --key, every MAC): exit 1 naming every bad record."""
    from toolkit.serve.audit import read_key, verify_audit

    result = verify_audit(path, anchor=anchor, key=read_key(key) if key is not None else None)
    if result.ok:
        macs = "MACs valid" if result.macs_checked else "MACs NOT checked (no --key: forgery not excluded)"
        sys.stdout.write(f"ok: {result.records} records, chain intact, {macs}; head {result.head}\n")
        return
    for p in result.problems:
        sys.stderr.write(f"BROKEN: {p}\n")
    raise typer.Exit(1)


@audit_app.command("head")
def audit_head(path: Path) -> None:
    """Print '<seq>:<hash>' of the last record: keep it elsewhere as an anchor for verify."""
    from toolkit.serve.audit import verify_audit

    sys.stdout.write(verify_audit(path).head + "\n")


@audit_app.command("show")
def audit_show(
    path: Path,
    card: Annotated[str | None, typer.Option(help="The call and the feedback of one card uuid")] = None,
    last: Annotated[int, typer.Option(help="The last N records")] = 20,
) -> None:
    """Records as JSON lines (no patient values are ever stored)."""
    from toolkit.serve.audit import read_records

    for rec in read_records(path, card=card, last=None if card else last):
        sys.stdout.write(json.dumps(rec) + "\n")
