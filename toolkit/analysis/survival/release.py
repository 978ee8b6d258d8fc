"""What survival outputs may be released under a disclosure policy (k = its minimum cell).

* A group with fewer than k persons or fewer than k events releases no curve, table rows,
  median, quantiles or RMST (its entry says why under ``suppressed``).
* A released curve stops where the number at risk falls below k, in tables exactly as in plots
  (:func:`kept_steps` is the rule both use): survival (or cumulative incidence) at a reporting
  time is released only when at least k persons are still at risk then.
* A median (and each limit of its CI, itself a quantile) is released only when at least k
  persons are at risk at that time and at least k events happened before it.
* An RMST to tau needs k persons at risk at tau (the area uses the whole curve up to tau) and k
  events by tau; a contrast needs both of its groups released.
* Group sizes, events per group and events by tau per group are cells of the run's linear
  system (:mod:`toolkit.disclosure.joint`): withheld with complementary suppression, the same
  cells in every table of the run (the ``marks`` each function takes).

Tables release survival at the declared reporting times only (``times``), never at every event
time.  Each function takes the entry an analysis computed and returns the released entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from toolkit.disclosure import DisclosurePolicy

MISSING = "(missing)"


def kept_steps(n_risk: np.ndarray, policy: DisclosurePolicy) -> np.ndarray:
    """Which distinct times of a curve may be shown: those with at least k persons at risk."""
    n_risk = np.asarray(n_risk)
    return np.ones(len(n_risk), bool) if not policy.enabled else n_risk >= policy.min_cell


def group_reason(n: int, events: int, policy: DisclosurePolicy, *, what: str = "events") -> str | None:
    """Why a group releases nothing (None: it is released)."""
    if not policy.enabled:
        return None
    k = policy.min_cell
    if n < k:
        return f"fewer than {k} persons"
    if events < k:
        return f"fewer than {k} {what}"
    return None


def at_risk_reason(n_risk: int, policy: DisclosurePolicy) -> str | None:
    if policy.enabled and n_risk < policy.min_cell:
        return f"fewer than {policy.min_cell} at risk"
    return None


def quantile_ok(
    q: float | None, time: np.ndarray, n_risk: np.ndarray, n_event: np.ndarray, policy: DisclosurePolicy
) -> bool:
    """A quantile time is released when >= k are at risk there and >= k events came before it."""
    if q is None or not policy.enabled:
        return True
    j = int(np.searchsorted(time, q, side="left"))
    at_risk = int(n_risk[j]) if j < len(n_risk) else 0
    before = int(n_event[time < q].sum())
    return at_risk >= policy.min_cell and before >= policy.min_cell


def with_counts(
    group: dict[str, Any], marks: Mapping[str, Mapping[str, str]], policy: DisclosurePolicy
) -> dict[str, Any]:
    """A group's entry with its withheld counts (``n``, ``events`` ...) null and marked."""
    out = dict(group)
    label = str(group["group"])
    withheld = {key: m[label] for key, m in marks.items() if label in m}
    for key in withheld:
        out[key] = None
    if withheld:
        out["counts_suppressed"] = withheld
    del policy
    return out


Marks = Mapping[str, Mapping[str, str]]


def km_entry(entry: dict[str, Any], curves: Mapping[str, Any], marks: Marks | None,
             policy: DisclosurePolicy) -> dict[str, Any]:  # fmt: skip
    """The Kaplan-Meier entry as released (``curves``: group -> KMCurve; ``marks``: the
    withheld group counts as the run decided them, ``{"n": {level: status}, "events": ...}``)."""
    if not policy.enabled:
        return entry
    marks = marks or {}
    groups = []
    for g in entry["groups"]:
        c = curves[g["group"]]
        why = group_reason(c.n, c.events, policy)
        g = with_counts(g, marks, policy)
        if why is not None:
            groups.append(_withheld(g, why, ("median", "median_lower", "median_upper"), "survival"))
            continue
        for key in ("median", "median_lower", "median_upper"):
            if not quantile_ok(g[key], c.time, c.n_risk, c.n_event, policy):
                g[key] = None
                g.setdefault("quantiles_suppressed", []).append(key)
        g["at"] = [_at_row(a, ("survival", "lower", "upper"), policy) for a in g["at"]]
        groups.append(g)
    out = {**entry, "groups": groups}
    if entry.get("logrank"):
        out["logrank"] = logrank_entry(entry["logrank"], marks, policy)
    return _noted(out, policy)


def logrank_entry(entry: dict[str, Any], marks: Marks | None, policy: DisclosurePolicy) -> dict[str, Any]:
    """Observed events per group are the events partition: withheld like the Kaplan-Meier's."""
    if not policy.enabled or not marks:
        return entry
    key = "events" if "rho" in entry else "observed"
    groups = []
    for g in entry["groups"]:
        m = marks.get("events", {})
        if str(g["group"]) in m:
            g = {**g, key: None, "counts_suppressed": {key: m[str(g["group"])]}}
        groups.append(g)
    return {**entry, "groups": groups}


def cif_entry(entry: dict[str, Any], curves: Mapping[str, Any], marks: Marks | None,
              policy: DisclosurePolicy) -> dict[str, Any]:  # fmt: skip
    """The cumulative-incidence entry as released (per group, and per cause within a group;
    ``marks``: ``{"n": ..., "events_<cause>": ...}``)."""
    if not policy.enabled:
        return entry
    marks = marks or {}
    groups = []
    for g in entry["groups"]:
        c = curves[g["group"]]
        g = with_counts(g, {"n": marks["n"]} if "n" in marks else {}, policy)
        small_group = group_reason(c.n, c.n, policy)
        causes = []
        for j, cause in enumerate(g["causes"]):
            cause = dict(cause)
            m = marks.get(f"events_{cause['cause']}", {})
            if str(g["group"]) in m:
                cause["events"] = None
                cause["counts_suppressed"] = {"events": m[str(g["group"])]}
            why = small_group or group_reason(c.n, int(c.n_event[:, j].sum()), policy)
            if why is not None:
                causes.append(_withheld(cause, why, (), "cif", also=("se",)))
            else:
                cause["at"] = [_at_row(a, ("cif", "se", "lower", "upper"), policy) for a in cause["at"]]
                causes.append(cause)
        g["causes"] = causes
        if small_group:
            g["suppressed"] = small_group
        groups.append(g)
    return _noted({**entry, "groups": groups}, policy)


def rmst_entry(entry: dict[str, Any], curves: Mapping[str, Any], marks: Marks | None,
               policy: DisclosurePolicy) -> dict[str, Any]:  # fmt: skip
    """The RMST entry as released: a group needs k persons, k events by tau and k at risk at tau
    (``marks``: ``{"n": ..., "events_by_tau": ...}``; its ``events`` are the events by tau)."""
    if not policy.enabled:
        return entry
    marks = {"events" if k == "events_by_tau" else k: v for k, v in (marks or {}).items()}
    tau = float(entry["tau"])
    groups, withheld = [], set()
    for g in entry["groups"]:
        c = curves[g["group"]]
        why = group_reason(c.n, int(g["events"]), policy, what="events by tau") or at_risk_reason(
            c.at(tau)[3], policy
        )
        events = int(g["events"])
        g = with_counts(g, marks, policy)
        if why is not None:
            withheld.add(g["group"])
            # its events by tau go too: marked as what they are (1..k-1, or not) for the reader
            cs = {
                "events": "small" if policy.is_small(events) else "complementary",
                **g.get("counts_suppressed", {}),
            }
            g = {
                **g,
                "rmst": None,
                "se": None,
                "lower": None,
                "upper": None,
                "events": None,
                "suppressed": why,
                "counts_suppressed": cs,
            }
        groups.append(g)
    contrasts = []
    for c in entry["contrasts"]:
        if c["group"] in withheld or c["reference"] in withheld:
            c = {k: (v if k in ("group", "reference") else None) for k, v in c.items()}
            c["suppressed"] = "a group is not released"
        contrasts.append(c)
    return _noted({**entry, "groups": groups, "contrasts": contrasts}, policy)


def _withheld(
    g: dict[str, Any], why: str, keys: tuple[str, ...], value: str, *, also: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A group (or cause) that releases nothing but its counts: every estimate null."""
    out = {**g, **{k: None for k in keys}, "suppressed": why}
    out["at"] = [
        {**a, value: None, "lower": None, "upper": None, "n_risk": None, **{k: None for k in also},
         "suppressed": why}
        for a in g["at"]
    ]  # fmt: skip
    return out


def _at_row(a: dict[str, Any], keys: tuple[str, ...], policy: DisclosurePolicy) -> dict[str, Any]:
    why = at_risk_reason(int(a["n_risk"]), policy)
    return a if why is None else {**a, **{k: None for k in keys}, "n_risk": None, "suppressed": why}


def _noted(entry: dict[str, Any], policy: DisclosurePolicy) -> dict[str, Any]:
    """The entry with one footnote saying what was withheld and why (when anything was)."""
    text = str(entry)
    reasons = []
    if "'suppressed'" in text or "quantiles_suppressed" in text:
        reasons.append(
            f"estimates are not released for a group with fewer than {policy.min_cell} persons or events, "
            f"at times with fewer than {policy.min_cell} at risk, or (medians) without {policy.min_cell} "
            "at risk and events before them"
        )
    if "counts_suppressed" in text:
        note = policy.footnote(["small", "complementary"] if "complementary" in text else ["small"])
        reasons.append(note.rstrip(".") if note else "")
    return {**entry, "disclosure_note": "; ".join(r for r in reasons if r) + "."} if reasons else entry
