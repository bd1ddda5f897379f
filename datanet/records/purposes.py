"""The fixed vocabulary of purposes an access request may declare.

The terms are a selection of the W3C Data Privacy Vocabulary (DPV 2.0) purposes
taxonomy (https://w3id.org/dpv#Purpose): each identifier is the kebab-case form
of a DPV term (``AcademicResearch`` -> ``academic-research``), carries the
term's IRI and its DPV parent (``skos:broader``). Where DPV gives a term two
parents (``CommercialResearch`` is also a ``CommercialPurpose``), the one kept is
the parent that is part of this vocabulary; the other is left out because its own
parent is not here. A term whose DPV parent is the root ``dpv:Purpose`` has
``parent=None``.

Aliases map a few everyday or older names to a term (see :data:`ALIASES`, each
with its reason). A free-text purpose is not allowed: a request names a term;
people write what they need in the request's ``note``.

Invariants:
* Every ``parent`` is a term of :data:`PURPOSES` or None, and the parent graph is
  a forest (no cycles), so :func:`purpose_satisfies` terminates.
* No alias is also a term id; every alias maps to a term.
* The vocabulary only grows: a term is never removed or renamed once shipped
  (records signed with it must keep decoding).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from datanet.errors import InvalidInput

__all__ = [
    "ALIASES",
    "DPV_NAMESPACE",
    "PURPOSES",
    "Purpose",
    "canonical_purpose",
    "purpose_ancestors",
    "purpose_satisfies",
]

DPV_NAMESPACE = "https://w3id.org/dpv#"


@dataclass(frozen=True)
class Purpose:
    """One term of the vocabulary.

    Attributes:
        id: the kebab-case identifier requests carry (``academic-research``).
        iri: the DPV term's IRI (``https://w3id.org/dpv#AcademicResearch``).
        label: the DPV label (``Academic Research``).
        description: one line for people.
        parent: the id of the broader term, or None for a top-level DPV purpose.
    """

    id: str
    iri: str
    label: str
    description: str
    parent: str | None


def _term(dpv: str, label: str, description: str, parent: str | None = None) -> Purpose:
    kebab = "".join("-" + c.lower() if c.isupper() else c for c in dpv).lstrip("-")
    return Purpose(kebab, DPV_NAMESPACE + dpv, label, description, parent)


_TERMS = (
    # research
    _term(
        "ResearchAndDevelopment",
        "Research and Development",
        "Research and development of new methods, products or services.",
    ),
    _term(
        "AcademicResearch",
        "Academic Research",
        "Research conducted in an academic context, e.g. at a university.",
        "research-and-development",
    ),
    _term(
        "ScientificResearch",
        "Scientific Research",
        "Scientific research.",
        "research-and-development",
    ),
    _term(
        "CommercialResearch",
        "Commercial Research",
        "Research in a commercial setting or with the intention to commercialise.",
        "research-and-development",
    ),
    _term(
        "NonCommercialResearch",
        "Non-Commercial Research",
        "Research in a non-commercial setting, e.g. for a non-profit organisation.",
        "research-and-development",
    ),
    # public benefit
    _term(
        "PublicBenefit",
        "Public Benefit",
        "Undertaken to benefit the public or society.",
    ),
    _term(
        "ImproveHealthcare",
        "Improve Healthcare",
        "Improving healthcare systems, e.g. treatments and the fight against chronic disease.",
        "public-benefit",
    ),
    _term(
        "ImprovePublicServices",
        "Improve Public Services",
        "Improving public services such as public safety, education or law enforcement.",
        "public-benefit",
    ),
    _term(
        "ImproveTransportMobility",
        "Improve Transport and Mobility",
        "Improving traffic, public transport, or the costs of travel.",
        "public-benefit",
    ),
    _term(
        "CombatClimateChange",
        "Combat Climate Change",
        "Fighting the causes and effects of climate change, including floods and wildfires.",
        "public-benefit",
    ),
    _term(
        "ProvideOfficialStatistics",
        "Provide Official Statistics",
        "Developing, producing and publishing reliable official statistics.",
        "public-benefit",
    ),
    _term(
        "PublicPolicyMaking",
        "Public Policy Making",
        "Making public policy, such as drafting new laws.",
        "public-benefit",
    ),
    _term(
        "ProtectionOfPublicSecurity",
        "Protection of Public Security",
        "Protecting public security.",
        "public-benefit",
    ),
    _term(
        "DataAltruism",
        "Data Altruism",
        "Voluntary sharing of data in the general interest of the public.",
        "public-benefit",
    ),
    # services
    _term(
        "ServiceProvision",
        "Service Provision",
        "Providing a service, product or activity.",
    ),
    _term(
        "ServiceOptimisation",
        "Service Optimisation",
        "Optimising services or activities.",
        "service-provision",
    ),
    _term(
        "ServiceUsageAnalytics",
        "Service Usage Analytics",
        "Analysing and reporting how services or products are used.",
        "service-provision",
    ),
    _term(
        "ServicePersonalisation",
        "Service Personalisation",
        "Personalising a service, product or activity.",
        "service-provision",
    ),
    _term(
        "Personalisation",
        "Personalisation",
        "Customisation based on the attributes or needs of people or contexts.",
    ),
    # marketing
    _term(
        "Marketing",
        "Marketing",
        "Promoting, selling and distributing an organisation's products or services.",
    ),
    _term(
        "Advertising",
        "Advertising",
        "Calling attention to a product or service through announcements or notices.",
        "marketing",
    ),
    # security
    _term(
        "EnforceSecurity",
        "Enforce Security",
        "Ensuring and enforcing the security of data, personnel or related matters.",
    ),
    _term(
        "MisusePreventionAndDetection",
        "Misuse Prevention and Detection",
        "Preventing and detecting misuse or abuse of services.",
        "enforce-security",
    ),
    _term(
        "FraudPreventionAndDetection",
        "Fraud Prevention and Detection",
        "Detecting, preventing and mitigating fraud.",
        "misuse-prevention-and-detection",
    ),
    # obligations and governance
    _term(
        "FulfilmentOfObligation",
        "Fulfilment of Obligation",
        "Fulfilling an obligation.",
    ),
    _term(
        "LegalCompliance",
        "Legal Compliance",
        "Fulfilling a legal or statutory obligation.",
        "fulfilment-of-obligation",
    ),
    _term(
        "OrganisationGovernance",
        "Organisation Governance",
        "Governing an organisation.",
    ),
    _term(
        "OrganisationRiskManagement",
        "Organisation Risk Management",
        "Managing the risks of an organisation's activities.",
        "organisation-governance",
    ),
    _term(
        "RecordManagement",
        "Record Management",
        "Creating, storing and using records of operations, events and processes.",
    ),
    _term(
        "HumanResourceManagement",
        "Human Resource Management",
        "Managing the people of an organisation.",
    ),
    _term(
        "CustomerManagement",
        "Customer Management",
        "Managing activities related to past, current and future customers.",
    ),
    _term(
        "CommunicationManagement",
        "Communication Management",
        "Providing or managing communication, e.g. sending a notification.",
    ),
)

#: Every term, id -> :class:`Purpose`, in a stable order (grouped by family).
PURPOSES: Mapping[str, Purpose] = MappingProxyType({p.id: p for p in _TERMS})

#: Other names accepted for a term (alias -> term id), each with why it is defensible.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        # DPV's broadest research purpose; what "research" means in everyday use.
        "research": "research-and-development",
        # DPV's own former names of the terms (renamed in DPV 1.0/2.0).
        "security": "enforce-security",
        "usage-analytics": "service-usage-analytics",
        # The official-statistics purpose under its shorter name.
        "official-statistics": "provide-official-statistics",
        # American spellings of DPV's British ones.
        "service-optimization": "service-optimisation",
        "service-personalization": "service-personalisation",
        "personalization": "personalisation",
        "organization-governance": "organisation-governance",
        "organization-risk-management": "organisation-risk-management",
    }
)

_BY_DPV_NAME: Mapping[str, str] = {p.iri.removeprefix(DPV_NAMESPACE).lower(): p.id for p in _TERMS}
_BY_IRI: Mapping[str, str] = {p.iri: p.id for p in _TERMS}


def _lookup(text: str) -> str | None:
    if text in PURPOSES:
        return text
    alias = ALIASES.get(text)
    if alias is not None:
        return alias
    by_iri = _BY_IRI.get(text)
    if by_iri is not None:
        return by_iri
    folded = text.strip().lower().replace("_", "-").replace(" ", "-")
    if folded in PURPOSES:
        return folded
    if folded in ALIASES:
        return ALIASES[folded]
    return _BY_DPV_NAME.get(folded.replace("-", ""))


def canonical_purpose(text: str) -> str:
    """The term id for ``text``: a term id, an alias, a DPV IRI or term name (any case).

    Raises:
        InvalidInput: ``text`` names no term; the message lists close matches and
            says where the list is.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"a purpose must be text, not {type(text).__name__}")
    found = _lookup(text) if len(text) <= 200 else None
    if found is not None:
        return found
    shown = text[:64].encode("ascii", "backslashreplace").decode("ascii")
    close = difflib.get_close_matches(text.strip().lower(), [*PURPOSES, *ALIASES], n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise InvalidInput(f"unknown purpose {shown!r}{hint}; run `datanet purposes` for the list")


def purpose_ancestors(purpose: str) -> tuple[str, ...]:
    """``purpose`` (a term id or alias) and its broader terms, nearest first.

    An unknown text has no ancestors: the result is ``(purpose,)``.
    """
    term = _lookup(purpose)
    if term is None:
        return (purpose,)
    chain = [term]
    parent = PURPOSES[term].parent
    while parent is not None:
        chain.append(parent)
        parent = PURPOSES[parent].parent
    return tuple(chain)


def purpose_satisfies(requested: str, allowed: str) -> bool:
    """Whether a request for ``requested`` falls under a policy's ``allowed`` purpose.

    True when they are equal, or ``requested`` is a narrower term of ``allowed``
    (``academic-research`` satisfies ``research-and-development``). Either may be
    an alias. An ``allowed`` text that is not in the vocabulary (a policy written
    before the vocabulary) matches only exactly the same text.
    """
    if requested == allowed:
        return True
    target = _lookup(allowed)
    if target is None:
        return False
    return target in purpose_ancestors(requested)
