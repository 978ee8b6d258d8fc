"""Fetch prefetch data a CDS client did not send, from its ``fhirServer`` with its
``fhirAuthorization`` (CDS Hooks 2.0 "FHIR Resource Access").

Only servers under a configured URL prefix are ever contacted (``fhir_servers``): a caller
cannot make Regent fetch an arbitrary URL.  The access token is sent to that server only and
never logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from toolkit.errors import InputValidationError

_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")
MAX_PAGES = 5


def allowed_server(url: str, prefixes: list[str]) -> bool:
    base = url.rstrip("/") + "/"
    return any(base.startswith(p.rstrip("/") + "/") for p in prefixes)


def render_template(template: str, context: Mapping[str, Any]) -> str:
    """Fill ``{{context.x}}`` tokens (URL-encoded); a missing context field is an error naming it."""

    def sub(m: re.Match[str]) -> str:
        value = context.get(m.group(1))
        if not isinstance(value, str) or not value:
            raise InputValidationError(
                f"context.{m.group(1)}: required to fetch FHIR data", fields=(m.group(1),)
            )
        return quote(value, safe="")

    return _TOKEN.sub(sub, template)


async def fetch_prefetch(
    client: httpx.AsyncClient,
    server: str,
    token: str,
    templates: Mapping[str, str],
    context: Mapping[str, Any],
) -> dict[str, Any]:
    """The resources (or searchset Bundles) for each template key, fetched from ``server``."""
    base = server.rstrip("/") + "/"
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"}
    out: dict[str, Any] = {}
    for key, template in templates.items():
        url = base + render_template(template, context)
        entries: list[Any] = []
        result: Any = None
        for _ in range(MAX_PAGES):
            reply = await client.get(url, headers=headers)
            if reply.status_code == 404:
                break
            if reply.status_code >= 400:
                raise InputValidationError(
                    f"fhirServer: fetching prefetch '{key}' answered HTTP {reply.status_code}", fields=(key,)
                )
            try:
                data = reply.json()
            except ValueError:
                raise InputValidationError(
                    f"fhirServer: prefetch '{key}' is not JSON", fields=(key,)
                ) from None
            if not isinstance(data, Mapping) or data.get("resourceType") != "Bundle":
                result = data
                break
            entries.extend(data.get("entry") or [])
            nxt = next(
                (
                    lk.get("url")
                    for lk in data.get("link") or []
                    if isinstance(lk, Mapping) and lk.get("relation") == "next"
                ),
                None,
            )
            result = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
            if not isinstance(nxt, str) or not nxt.startswith(base):
                break  # never follow a link off the client's FHIR server
            url = nxt
        if result is not None:
            out[key] = result
    return out
