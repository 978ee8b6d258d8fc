"""Fetch prefetch data a CDS client did not send, from its ``fhirServer`` with its
``fhirAuthorization`` (CDS Hooks 2.0 "FHIR Resource Access").

Only URLs under a configured base (``fhir_servers``) are ever contacted, compared after
normalisation: scheme, host and port exactly, and path segments after percent-decoding and
dot-segment removal, so ``…/r4/../admin`` or ``…/r4/%2e%2e/admin`` is not under ``…/r4``.
Every request (each search and each next-page link) is checked before it is sent, so the EHR's
access token goes to allowed URLs only; it is never logged.  Answers are read up to
``max_bytes`` in all and at most ``max_pages`` pages per search: a search that does not fit is
refused rather than used in part.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from toolkit.agents.fhir_model import parse_resource
from toolkit.errors import InputValidationError

_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")


@dataclass(frozen=True)
class Location:
    """A URL reduced to what decides where a request goes."""

    scheme: str
    host: str
    port: int
    segments: tuple[str, ...]

    def under(self, base: Location) -> bool:
        return (self.scheme, self.host, self.port) == (base.scheme, base.host, base.port) and (
            self.segments[: len(base.segments)] == base.segments
        )


def normalise(url: str) -> Location | None:
    """Scheme, host, port and path segments of an http(s) URL; None for anything doubtful
    (user info, backslashes, a segment still percent-encoded after one decoding, a path
    climbing above the root)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    path = unquote(parts.path)
    if any(c in path for c in ("\\", "%", "\x00")):
        return None
    segments: list[str] = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not segments:
                return None
            segments.pop()
        else:
            segments.append(seg)
    host = parts.hostname.lower().rstrip(".")
    return Location(scheme, host, port or (443 if scheme == "https" else 80), tuple(segments))


def under(url: str, base: str) -> bool:
    """True when ``url`` lies under ``base`` once both are normalised."""
    u, b = normalise(url), normalise(base)
    return u is not None and b is not None and u.under(b)


def allowed_server(url: str, bases: list[str]) -> bool:
    return any(under(url, b) for b in bases)


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Fill ``{{context.x}}`` tokens (URL-encoded); a missing context field is an error naming it."""

    def sub(m: re.Match[str]) -> str:
        value = context.get(m.group(1))
        if not isinstance(value, str) or not value:
            raise InputValidationError(
                f"context.{m.group(1)}: required to fetch FHIR data", fields=(f"context.{m.group(1)}",)
            )
        return quote(value, safe="")

    return _TOKEN.sub(sub, template)


@dataclass
class Budget:
    """Bytes left for this call's fetches."""

    bytes_left: int


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str], key: str, budget: Budget) -> Any:
    """One GET read up to the byte budget; None for 404 (nothing there)."""
    async with client.stream("GET", url, headers=headers) as reply:
        if reply.status_code == 404:
            return None
        if reply.status_code != 200:
            raise InputValidationError(
                f"fhirServer: fetching prefetch '{key}' answered HTTP {reply.status_code}", fields=(key,)
            )
        body = bytearray()
        async for chunk in reply.aiter_bytes():
            body += chunk
            if len(body) > budget.bytes_left:
                raise InputValidationError(
                    f"fhirServer: the answers for this call exceed fhir_max_bytes; refusing '{key}'",
                    fields=(key,),
                )
        budget.bytes_left -= len(body)
    try:
        return json.loads(body)
    except ValueError:
        raise InputValidationError(f"fhirServer: prefetch '{key}' is not JSON", fields=(key,)) from None


def _next_link(bundle: Mapping[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


async def fetch_prefetch(
    client: httpx.AsyncClient,
    server: str,
    token: str,
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    *,
    max_bytes: int = 5_000_000,
    max_pages: int = 20,
) -> dict[str, Any]:
    """The resources (or one searchset Bundle of every page) for each template key."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    budget = Budget(max_bytes)
    base = server.rstrip("/") + "/"
    out: dict[str, Any] = {}
    for key, template in templates.items():
        url: str | None = base + render_template(template, context)
        entries: list[Any] = []
        result: Any = None
        for page in range(max_pages + 1):
            if url is None:
                break
            if page == max_pages:
                raise InputValidationError(
                    f"fhirServer: search '{key}' has more than {max_pages} pages; refusing a partial result",
                    fields=(key,),
                )
            if not under(url, server):  # the token goes to the allowed server only
                raise InputValidationError(
                    f"fhirServer: a link of search '{key}' leaves the FHIR server; refusing a partial result",
                    fields=(key,),
                )
            data = await _get(client, url, headers, key, budget)
            if data is None:
                break
            parse_resource(data, f"fhirServer.{key}" + (f"[page {page + 1}]" if page else ""))
            if data.get("resourceType") != "Bundle":
                result = data
                break
            entries.extend(data.get("entry") or [])
            result = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
            url = _next_link(data)
        if result is not None:
            out[key] = result
    return out
