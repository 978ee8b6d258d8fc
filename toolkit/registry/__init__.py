"""Registry layer: the canonical schema, the DuckDB store, importers and the synthetic generator."""

from toolkit.registry.check import QualityReport, check_registry
from toolkit.registry.store import Attribute, Registry, RegistryData, RegistryWriter, write_registry

__all__ = [
    "Attribute",
    "QualityReport",
    "Registry",
    "RegistryData",
    "RegistryWriter",
    "check_registry",
    "write_registry",
]
