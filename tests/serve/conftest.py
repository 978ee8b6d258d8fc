from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from toolkit.cli.demo import free_port
from toolkit.serve.app import create_app
from toolkit.serve.settings import Settings


@pytest.fixture(scope="module")
def server(gbsg2_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real uvicorn server on a loopback port serving the gbsg2 bundle."""
    audit = tmp_path_factory.mktemp("audit") / "audit.sqlite"
    app = create_app(Settings(agents_dir=gbsg2_bundle.parent, auth="off", audit_path=audit))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)
