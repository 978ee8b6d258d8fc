"""The one exception and warning hierarchy of Regent.

Every error raised on purpose by the toolkit derives from :class:`ToolkitError` and from the
built-in exception it refines, so callers can catch either.  Messages name the file, key or
field, what was expected and what was received, and never carry patient values.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base class of every error Regent raises on purpose."""


class SpecError(ToolkitError, ValueError):
    """A YAML/JSON specification is invalid (unknown key, wrong type, inconsistent values)."""


class RegistryError(ToolkitError, ValueError):
    """A registry is missing, has the wrong schema, or cannot be opened."""


class ImportMappingError(SpecError):
    """A flat-registry mapping file is malformed or does not match its data."""


class CohortSpecError(SpecError):
    """A cohort specification is invalid."""


class StudySpecError(SpecError):
    """A study specification is invalid."""


class RunNotFoundError(ToolkitError, LookupError):
    """A tracked run (or a study output folder) named by the user does not exist."""


class AnalysisError(ToolkitError, ValueError):
    """A statistic cannot be computed on the data given (e.g. no events)."""


class ConvergenceError(AnalysisError):
    """An iterative fit did not converge."""


class AgentError(ToolkitError, ValueError):
    """An agent contract, bundle or call is invalid."""


class AgentContractError(AgentError, SpecError):
    """An agent.yaml is invalid."""


class IntegrityError(AgentError):
    """A bundle file does not match its recorded hash."""


class GateError(AgentError):
    """A model failed a validation gate and may not be packaged."""


class InputValidationError(AgentError):
    """A prediction input is missing, of the wrong type or unit, or out of range."""

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.fields = fields


class MissingDataError(InputValidationError):
    """Required inputs are absent (CDS Hooks answers 412)."""


class DisclosureError(ToolkitError, ValueError):
    """An aggregate would reveal a small cell and cannot be released."""


class DeidentificationError(ToolkitError, ValueError):
    """A registry, key file or de-identification setting is unusable."""


class FederatedError(ToolkitError, RuntimeError):
    """A federated run stopped; the message names the site and the round."""

    def __init__(self, message: str, *, site: str | None = None, round_no: int | None = None) -> None:
        super().__init__(message)
        self.site = site
        self.round_no = round_no


class SiteRefusal(FederatedError):
    """A site declined to release an aggregate (below its minimums); the reason is the site's."""


class ToolkitWarning(UserWarning):
    """Base class of Regent's warnings."""


class AnalysisWarning(ToolkitWarning):
    """A statistic was computed but deserves attention (recorded in the result)."""


class SpecWarning(ToolkitWarning):
    """A specification is valid but asks for something the data cannot give (a horizon beyond the
    longest follow-up); the message names the file and key."""


def yaml_path(loc: tuple[str | int, ...]) -> str:
    """Render a pydantic error location as a YAML key path: ``cohort.inclusion[2].window``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"
