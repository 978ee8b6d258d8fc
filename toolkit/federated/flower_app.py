"""The Flower apps: a ClientApp that answers as a site node, a ServerApp that coordinates.

Imported only inside Flower's processes (``flwr-clientapp`` and ``flwr-serverapp``, started by
a SuperNode and the SuperLink), where ``flwr`` is importable; the launcher is
:mod:`toolkit.federated.flower`.  Each message carries one wire-encoded request or
reply (:mod:`.wire`) in a ConfigRecord.

Site settings come from the SuperNode's ``--node-config``: ``site``, ``registry``, ``cache``
and the :class:`~toolkit.federated.limits.SiteLimits` fields.  A site's limits are
therefore set by whoever starts that site's SuperNode, never by the coordinator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from toolkit.errors import FederatedError, ToolkitError
from toolkit.federated.limits import RunOptions, SiteLimits
from toolkit.federated.site import SiteNode
from toolkit.io import atomic_write_json

KEY = "regent"
client = ClientApp()
server = ServerApp()


def _record(payload: bytes) -> RecordDict:
    return RecordDict({KEY: ConfigRecord({"payload": payload})})


def _payload(msg: Message) -> bytes:
    value = msg.content[KEY]["payload"]
    if not isinstance(value, bytes):
        raise FederatedError("a Regent message must carry bytes")
    return value


@client.query()
def answer(msg: Message, context: Context) -> Message:
    cfg = dict(context.node_config)
    limits = SiteLimits.from_mapping({k: v for k, v in cfg.items() if k in SiteLimits.__dataclass_fields__})
    node = SiteNode(
        str(cfg["registry"]), name=str(cfg["site"]), limits=limits, cache_dir=cfg.get("cache") or None
    )
    return Message(_record(node.handle_bytes(_payload(msg))), reply_to=msg)


class FlowerTransport:
    """Broadcasts a round to every SuperNode through the Grid and collects the replies."""

    name = "flower"

    def __init__(
        self, grid: Grid, *, expected: int, timeout_s: float, connect_timeout_s: float = 120.0
    ) -> None:
        self.grid = grid
        self.timeout_s = timeout_s
        self.bytes = 0
        deadline = time.monotonic() + connect_timeout_s
        while len(list(grid.get_node_ids())) < expected:
            if time.monotonic() > deadline:
                raise FederatedError(
                    f"only {len(list(grid.get_node_ids()))} of {expected} site nodes connected "
                    f"within {connect_timeout_s:g} s"
                )
            time.sleep(0.2)
        ids = sorted(grid.get_node_ids())
        replies = self._send(0, {i: b'{"identify":true}' for i in ids})
        self.node_site: dict[int, str] = {}
        for nid, data in replies.items():
            site = json.loads(data.decode("utf-8")).get("site")
            if not isinstance(site, str) or site in self.node_site.values():
                raise FederatedError(f"node {nid} did not identify itself with a unique site name")
            self.node_site[nid] = site

    def sites(self) -> list[str]:
        return sorted(self.node_site.values())

    def _send(self, round_no: int, payloads: dict[int, bytes]) -> dict[int, bytes]:
        msgs = [
            Message(_record(p), dst_node_id=nid, message_type="query", group_id=str(round_no))
            for nid, p in payloads.items()
        ]
        ids = set(self.grid.push_messages(msgs))
        self.bytes += sum(len(p) for p in payloads.values())
        out: dict[int, bytes] = {}
        deadline = time.monotonic() + self.timeout_s
        while ids and time.monotonic() < deadline:
            for reply in self.grid.pull_messages(ids):
                ids.discard(reply.metadata.reply_to_message_id)
                nid = reply.metadata.src_node_id
                if reply.has_error():
                    site = getattr(self, "node_site", {}).get(nid, f"node {nid}")
                    raise FederatedError(
                        f"round {round_no}: site {site} failed ({reply.error.reason})",
                        site=site,
                        round_no=round_no,
                    )
                out[nid] = _payload(reply)
                self.bytes += len(out[nid])
            if ids:
                time.sleep(0.05)
        return out

    def exchange(self, round_no: int, payload: bytes) -> dict[str, bytes]:
        replies = self._send(round_no, {nid: payload for nid in self.node_site})
        missing = [self.node_site[n] for n in self.node_site if n not in replies]
        if missing:
            raise FederatedError(
                f"round {round_no}: site {missing[0]} did not answer within {self.timeout_s:g} s",
                site=missing[0],
                round_no=round_no,
            )
        return {self.node_site[n]: b for n, b in replies.items()}


@server.main()
def coordinate(grid: Grid, context: Context) -> None:
    from toolkit.federated.coordinator import run_federated

    rc: dict[str, Any] = dict(context.run_config)
    status = Path(str(rc["status"]))
    try:
        options = RunOptions(
            exact=bool(rc["exact"]),
            time_base_days=float(rc["time_base_days"]),
            value_base_sd=float(rc["value_base_sd"]),
            timeout_s=float(rc["timeout_s"]),
        )
        transport = FlowerTransport(grid, expected=int(rc["n_sites"]), timeout_s=options.timeout_s)
        run = run_federated(str(rc["study"]), transport, out=str(rc["out"]), options=options)
        atomic_write_json(
            status, {"ok": True, "rounds": run.results.federated.rounds if run.results.federated else 0}
        )
    except ToolkitError as exc:
        atomic_write_json(
            status,
            {
                "ok": False,
                "error": str(exc),
                "type": type(exc).__name__,
                "site": getattr(exc, "site", None),
                "round": getattr(exc, "round_no", None),
            },
        )
    except Exception as exc:  # reported to the launcher, which raises it
        atomic_write_json(status, {"ok": False, "error": f"{type(exc).__name__}: {exc}", "type": "Exception"})
