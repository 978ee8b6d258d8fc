"""Federated studies: sites return aggregates, a coordinator computes pooled-equal statistics.

``SiteNode`` (a site, next to its registry), ``run_federated`` (the coordinator), transports
(``InProcessTransport`` here; Flower's deployment runtime in :mod:`.flower`), and the rules a
site applies before anything leaves it (``SiteLimits``).  docs/privacy.md describes the
protocol and what each message can reveal.
"""

from toolkit.federated.coordinator import FederatedRun, run_federated
from toolkit.federated.limits import RunOptions, SiteLimits
from toolkit.federated.site import SiteNode
from toolkit.federated.split import split_registry
from toolkit.federated.transport import InProcessTransport

__all__ = [
    "FederatedRun",
    "InProcessTransport",
    "RunOptions",
    "SiteLimits",
    "SiteNode",
    "run_federated",
    "split_registry",
]
