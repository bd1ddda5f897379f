"""Catalog search filters and facet counts: the shapes the catalog, node, API and client share.

The catalog (``datanet.store.catalog``) evaluates a :class:`SearchFilters`; the
control API builds one from its request fields, and the client mirrors its
fields. It lives here, with the pure record formats, because the API may not
import the store.

Facets, as CKAN users know them: ``org``, ``keyword``, ``theme``, ``license``,
``media_type`` and ``access``. Values within one facet are OR'ed, facets are
AND'ed; a temporal filter keeps descriptors whose coverage overlaps
``[temporal_from, temporal_to]``.

Invariants:
* A :class:`SearchFilters` that exists is within bounds: at most
  ``MAX_FILTER_VALUES`` values per facet, each non-empty and at most
  ``MAX_FILTER_VALUE`` characters, ``access`` values among ``ACCESS_MODES``,
  ``temporal_from <= temporal_to``. Values are stored normalized (stripped;
  every facet but ``org`` case-folded), so equal filters compare equal.
* Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from datanet.errors import InvalidInput
from datanet.records.fields import MAX_U63
from datanet.records.policy import ACCESS_MODES

__all__ = [
    "FACETS",
    "MAX_FACET_VALUES",
    "MAX_FILTER_VALUE",
    "MAX_FILTER_VALUES",
    "FacetCount",
    "SearchFilters",
]

FACETS: tuple[str, ...] = ("org", "keyword", "theme", "license", "media_type", "access")
"""The facet names, in the order results list them."""
MAX_FILTER_VALUES = 20
"""At most this many values per facet in one filter."""
MAX_FILTER_VALUE = 256
"""At most this many characters per filter value (the longest facet field: themes, licenses)."""
MAX_FACET_VALUES = 20
"""A search result counts the top this many values of each facet."""

# SearchFilters field -> facet name (the temporal bounds are not facets).
_FIELD_FACET = {
    "orgs": "org",
    "keywords": "keyword",
    "themes": "theme",
    "licenses": "license",
    "media_types": "media_type",
    "access": "access",
}


def _normalize(facet: str, values: Any) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise InvalidInput(f"the {facet} filter is a list of values")
    if len(values) > MAX_FILTER_VALUES:
        raise InvalidInput(f"the {facet} filter takes at most {MAX_FILTER_VALUES} values")
    out: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise InvalidInput(f"{facet} filter values are text")
        text = value.strip()
        if not text or len(text) > MAX_FILTER_VALUE:
            raise InvalidInput(f"a {facet} filter value is 1 to {MAX_FILTER_VALUE} characters")
        if any(ord(c) < 32 for c in text):
            raise InvalidInput(f"a {facet} filter value has a control character")
        if facet != "org":
            text = text.casefold()
        if facet == "access" and text not in ACCESS_MODES:
            raise InvalidInput(
                f"access filter values are {', '.join(ACCESS_MODES)}; got {value[:40]!r}"
            )
        if text not in out:
            out.append(text)
    return tuple(out)


def _bound(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_U63 <= value <= MAX_U63:
        raise InvalidInput(f"{name} is a time in Unix seconds")
    return value


@dataclass(frozen=True)
class SearchFilters:
    """What a search keeps besides its words (all empty: everything).

    Attributes:
        orgs: publishing organizations (``did:key`` text, exact).
        keywords: keywords (case-insensitive, exact).
        themes: themes (case-insensitive, exact).
        licenses: licenses (case-insensitive, exact).
        media_types: media types of a distribution (case-insensitive, exact).
        access: access modes (``open``, ``request``, ``closed``).
        temporal_from: keep coverage that ends at or after this (Unix seconds).
        temporal_to: keep coverage that starts at or before this (Unix seconds).
            Either bound set leaves out descriptors without temporal coverage.

    Raises:
        InvalidInput: a value is out of bounds (see the module invariants).
    """

    orgs: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()
    licenses: tuple[str, ...] = ()
    media_types: tuple[str, ...] = ()
    access: tuple[str, ...] = ()
    temporal_from: int | None = None
    temporal_to: int | None = None

    def __post_init__(self) -> None:
        for name, facet in _FIELD_FACET.items():
            object.__setattr__(self, name, _normalize(facet, getattr(self, name)))
        start = _bound("the 'from' time", self.temporal_from)
        end = _bound("the 'to' time", self.temporal_to)
        if start is not None and end is not None and start > end:
            raise InvalidInput("the 'from' time lies after the 'to' time")

    def by_facet(self) -> dict[str, tuple[str, ...]]:
        """The non-empty facet filters, by facet name."""
        return {
            facet: getattr(self, name)
            for name, facet in _FIELD_FACET.items()
            if getattr(self, name)
        }

    @property
    def empty(self) -> bool:
        """Whether nothing is filtered."""
        return not self.by_facet() and self.temporal_from is None and self.temporal_to is None

    def key(self) -> tuple[object, ...]:
        """A canonical, hashable form (cursors bind to it)."""
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class FacetCount:
    """How many matches carry ``value`` in one facet."""

    value: str
    count: int
