"""Contract codes (``system|code``, ``system|prefix*``) as FHIR searches and as matchers.

A FHIR server searches ``code=`` by exact token: ``code=http://hl7.org/fhir/sid/icd-10|E11``
finds a Condition coded ``E11`` and not one coded ``E11.9``.  So a wildcard is never sent as a
code.  A resource type whose codes are all exact is searched with ``code=`` and the list; one
with a wildcard is searched with ``code:below=`` where the server declares subsumption
(settings ``fhir_code_below``), otherwise for all of the patient's resources of that type.
Either way Regent itself keeps only the resources whose coding matches a contract code by
system and code (a wildcard by prefix).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from toolkit.agents.contract import AgentContract
from toolkit.registry.schema import canonical_code

SYSTEMS = {
    "LOINC": "http://loinc.org",
    "SNOMED": "http://snomed.info/sct",
    "ICD10": "http://hl7.org/fhir/sid/icd-10",
    "ATC": "http://www.whocc.no/atc",
}


@dataclass(frozen=True)
class CodeRef:
    """One contract code: exact, or a prefix (written with a trailing ``*``)."""

    system: str
    code: str
    prefix: bool = False

    @classmethod
    def parse(cls, text: str) -> CodeRef:
        system, sep, value = text.partition("|")
        if not sep:  # Regent's 'LOINC:33762-6' shorthand, or MEDS's 'LOINC//33762-6'
            ns, _, value = canonical_code(text).partition(":")
            system = SYSTEMS.get(ns, ns)
        prefix = value.endswith("*")
        return cls(system, value.rstrip("*"), prefix)

    @property
    def token(self) -> str:
        return f"{self.system}|{self.code}"

    def matches(self, system: Any, code: Any) -> bool:
        if system != self.system or not isinstance(code, str):
            return False
        return code.startswith(self.code) if self.prefix else code == self.code


def match(concept: Any, refs: Iterable[CodeRef]) -> str | None:
    """``system|code`` of the first coding of a CodeableConcept model that a ref matches."""
    refs = list(refs)
    for coding in getattr(concept, "coding", None) or []:
        for ref in refs:
            if ref.matches(coding.system, coding.code):
                return f"{coding.system}|{coding.code}"
    return None


def search_templates(contract: AgentContract, *, code_below: bool = False) -> dict[str, str]:
    """CDS Hooks prefetch templates (and Regent's own fetch queries) for ``contract``."""
    out: dict[str, str] = {}
    sources = [i.fhir for i in contract.inputs if i.fhir is not None]
    if any(s.resource == "Patient" for s in sources):
        out["patient"] = "Patient/{{context.patientId}}"
    for res in sorted({s.resource for s in sources} - {"Patient"}):
        refs = sorted({CodeRef.parse(c) for s in sources if s.resource == res for c in s.codes}, key=str)
        query = f"{res}?patient={{{{context.patientId}}}}"
        tokens = ",".join(r.token for r in refs)
        if not any(r.prefix for r in refs):
            query += f"&code={tokens}"
        elif code_below:
            query += f"&code:below={tokens}"
        # else: every resource of this type for the patient; Regent matches the codes itself
        out[res.lower()] = query
    return out
