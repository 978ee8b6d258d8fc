"""How requests reach sites: an in-process transport for tests and notebooks; Flower for deployment.

A transport broadcasts one encoded request per round to every site and returns each site's
encoded reply.  It raises :class:`~toolkit.errors.FederatedError` naming the site and the round
when a site does not answer; the coordinator judges what the answers contain.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from toolkit.errors import FederatedError
from toolkit.federated.wire import decode, encode


class Transport(Protocol):
    """Carries one broadcast request per round; replies keyed by site name."""

    name: str

    def sites(self) -> list[str]: ...

    def exchange(self, round_no: int, payload: bytes) -> dict[str, bytes]: ...


class Node(Protocol):
    name: str

    def handle(self, request: dict[str, Any]) -> dict[str, Any]: ...


class InProcessTransport:
    """Calls each site node in this process (each in its own thread, with a timeout).

    Requests and replies still go through the wire format, so byte counts and what a site
    can see are the same as over Flower.
    """

    name = "inprocess"

    def __init__(self, nodes: Sequence[Node], *, timeout_s: float = 300.0) -> None:
        names = [n.name for n in nodes]
        if len(set(names)) != len(names):
            raise FederatedError(f"site names must be unique; got {names}")
        self.nodes = list(nodes)
        self.timeout_s = timeout_s

    def sites(self) -> list[str]:
        return [n.name for n in self.nodes]

    def _call(self, node: Node, payload: bytes) -> bytes:
        handle_bytes = getattr(node, "handle_bytes", None)
        if callable(handle_bytes):
            out = handle_bytes(payload)
            assert isinstance(out, bytes)
            return out
        return encode(node.handle(decode(payload)))

    def exchange(self, round_no: int, payload: bytes) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        pool = ThreadPoolExecutor(max_workers=1)
        try:
            for node in self.nodes:  # one at a time: sites share this process's cores
                future = pool.submit(self._call, node, payload)
                try:
                    out[node.name] = future.result(timeout=self.timeout_s)
                except FutureTimeout:
                    raise FederatedError(
                        f"round {round_no}: site {node.name} did not answer within {self.timeout_s:g} s",
                        site=node.name,
                        round_no=round_no,
                    ) from None
                except Exception as exc:  # a site that crashed has dropped out
                    raise FederatedError(
                        f"round {round_no}: site {node.name} dropped out ({type(exc).__name__})",
                        site=node.name,
                        round_no=round_no,
                    ) from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # never wait for a site that hangs
        return out
