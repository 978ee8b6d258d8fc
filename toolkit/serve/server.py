"""How uvicorn runs the app: header size and header-read time limits, logging.

uvicorn's httptools protocol has no limit on the size of a request's headers nor on the time a
client takes to send them (four 8 MB headers stalled the event loop for seconds, and a client
that sends one byte a second holds a connection for ever).  :class:`LimitedHttpToolsProtocol`
adds both: headers past ``max_header_bytes`` get ``431`` and the connection is closed; a
connection whose request line and headers are not complete ``header_timeout_s`` after the
request began is closed.  Bodies are bounded by the app (``max_body_bytes``,
``request_timeout_s``).  Behind a reverse proxy, set the proxy's own limits too
(docs/serving.md).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from toolkit.serve.settings import Settings

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\ncontent-length: 46\r\nconnection: close\r\n\r\n"
    b'{"error": "request headers too large (431)"}\r\n'
)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit and a header-read timeout.

    The limits come from ``REGENT_MAX_HEADER_BYTES`` and ``REGENT_HEADER_TIMEOUT_S`` (set by
    ``regent serve`` from the settings, and inherited by its workers) unless a subclass made
    by :func:`limited_protocol` fixes them.
    """

    max_header_bytes: int | None = None
    header_timeout_s: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._limit = self.max_header_bytes or int(os.environ.get("REGENT_MAX_HEADER_BYTES", "16384"))
        self._deadline = self.header_timeout_s or float(os.environ.get("REGENT_HEADER_TIMEOUT_S", "10"))
        self._in_head = True
        self._head_bytes = 0
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self._deadline, self._too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        if self._in_head and not self.transport.is_closing():
            self.transport.close()  # a slow (or idle) client: no answer, the connection goes

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            window = self._tail + data
            end = window.find(b"\r\n\r\n")
            size = self._head_bytes + (len(data) if end < 0 else end + 4 - len(self._tail))
            if size > self._limit:
                self._disarm()
                self.transport.write(_431)
                self.transport.close()
                return
            self._head_bytes += len(data)
            self._tail = window[-3:]
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:  # the next request on a kept-alive connection
            self._in_head, self._head_bytes, self._tail = True, 0, b""
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        super().on_headers_complete()


def limited_protocol(max_header_bytes: int, header_timeout_s: float) -> type[LimitedHttpToolsProtocol]:
    """A protocol class with fixed limits (for a server started in this process)."""
    return type(
        "LimitedHttpToolsProtocol",
        (LimitedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout_s": header_timeout_s},
    )


#: uvicorn's logging, plus Regent's own loggers (auth refusals, errors) on stderr at INFO
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"}
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "uvicorn.error": {"level": "WARNING"},
        "regent": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config`` / ``uvicorn.run`` that every server uses."""
    return {
        "http": limited_protocol(settings.max_header_bytes, settings.header_timeout_s),
        "access_log": False,  # access lines carry URLs with patient ids: never logged
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 10,
    }
