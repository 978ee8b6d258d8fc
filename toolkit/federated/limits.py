"""What a site is willing to release, and how a federated run asks for it.

:class:`SiteLimits` belong to the site: each hospital sets them when it starts its node, and a
coordinator cannot lower them.  :class:`RunOptions` belong to the study run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from toolkit.errors import FederatedError


@dataclass(frozen=True)
class SiteLimits:
    """A site's release rules, checked before anything leaves it.

    ``min_persons`` and ``min_events``: a site refuses an analysis whose sample (or any group,
    stratum or level it reports separately) has between 1 and ``min_persons - 1`` persons, or
    fewer than ``min_events`` outcome events.  ``min_bin``: every released histogram bin holds
    0 or at least this many events, censorings or values per cell (see :mod:`.bins`).
    ``persons_per_parameter``: a regression with ``p`` parameters needs at least this many
    persons per parameter at the site (with few persons per parameter, scores and information
    matrices come close to describing individuals).  ``min_cell``: small counts in Table 1 and
    attrition replies are suppressed, as in every other output.  ``allow_exact``: release
    per-time and per-value counts (needed for results identical to a pooled run); off unless
    the site turns it on.
    """

    min_persons: int = 10
    min_events: int = 10
    min_bin: int = 10
    persons_per_parameter: int = 10
    min_cell: int = 10
    allow_exact: bool = False

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if name != "allow_exact" and (not isinstance(value, int) or value < 1):
                raise FederatedError(f"site limits: {name} must be an integer >= 1; got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_mapping(values: dict[str, Any]) -> SiteLimits:
        known = set(SiteLimits.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise FederatedError(f"site limits: unknown setting(s) {unknown}; known: {sorted(known)}")
        return SiteLimits(**values)


@dataclass(frozen=True)
class RunOptions:
    """How the coordinator asks: exact per-time counts, or shared bins on a base grid.

    ``time_base_days``: the base grid of follow-up times in binned mode.  ``value_base_sd``:
    the base grid of Table 1 values in binned mode, as a fraction of the pooled SD.
    ``timeout_s``: how long the coordinator waits for a round's replies.
    """

    exact: bool = False
    time_base_days: float = 1.0
    value_base_sd: float = 0.05
    timeout_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.time_base_days > 0 or not self.value_base_sd > 0 or not self.timeout_s > 0:
            raise FederatedError("run options: time_base_days, value_base_sd and timeout_s must be > 0")

    @property
    def mode(self) -> str:
        return "exact" if self.exact else "binned"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mode": self.mode}
