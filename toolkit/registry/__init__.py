"""Registry layer: the canonical schema, the DuckDB store, importers and the synthetic generator.

The names below load on first use, so that ``toolkit.registry.schema`` (imported by every spec)
does not pull pandas and DuckDB into a command that never opens a registry.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolkit.registry.check import QualityReport, check_registry
    from toolkit.registry.store import Attribute, Registry, RegistryData, RegistryWriter, write_registry

_LAZY = {
    "Attribute": "toolkit.registry.store",
    "QualityReport": "toolkit.registry.check",
    "Registry": "toolkit.registry.store",
    "RegistryData": "toolkit.registry.store",
    "RegistryWriter": "toolkit.registry.store",
    "check_registry": "toolkit.registry.check",
    "write_registry": "toolkit.registry.store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'toolkit.registry' has no attribute {name!r}")


__all__ = [
    "Attribute",
    "QualityReport",
    "Registry",
    "RegistryData",
    "RegistryWriter",
    "check_registry",
    "write_registry",
]
