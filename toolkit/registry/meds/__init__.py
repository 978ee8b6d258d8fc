"""MEDS (Medical Event Data Standard) to and from registries: :func:`export_meds`, :func:`import_meds`."""

from toolkit.registry.meds.common import MEDS_VERSION
from toolkit.registry.meds.export import DATA_SCHEMA, export_meds
from toolkit.registry.meds.importer import import_meds

__all__ = ["DATA_SCHEMA", "MEDS_VERSION", "export_meds", "import_meds"]
