"""Disclosure control: the policy every aggregate passes through before it leaves the toolkit
(:mod:`.policy`), and the scanner that checks published outputs (:mod:`.scan`).

A leaf of the pipeline: it imports nothing from Regent, and every layer may use it.
"""

from toolkit.disclosure.policy import COUNT_KEYS, MARKERS, DisclosurePolicy, group_sizes

__all__ = ["COUNT_KEYS", "MARKERS", "DisclosurePolicy", "group_sizes"]
