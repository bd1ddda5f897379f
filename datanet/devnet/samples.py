"""The devnet's sample datasets: loaded from ``samples.toml``, signed and published per org.

The datasets themselves are data, not code: ``samples.toml`` (shipped with the
package) describes them; :func:`load_samples` reads and checks it and gives
:data:`SAMPLE_DATASETS`, :data:`TOUR_DATASET` and the tour's update and search
words. :func:`build_descriptor` turns a sample into one organization's
descriptor, :func:`publish_samples` signs and publishes them through each
organization's first node's HTTP API.

Invariants:
* A damaged or incomplete ``samples.toml`` is refused with a :class:`SamplesError`
  that names the file, the entry and the field; nothing half-loaded is used.
* Every sample gives a valid descriptor for every devnet organization (the
  end-to-end tests sign and verify each one).
"""

from __future__ import annotations

import datetime
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from datanet.client import Client, Resolved
from datanet.devnet.layout import RENEW_MARGIN, Devnet, DevnetError, DevnetNode, DevnetOrg
from datanet.errors import DatanetError, NotFound
from datanet.node.home import Home
from datanet.records.descriptor import AccessPolicy, Descriptor, Distribution, sign_descriptor
from datanet.records.ids import DatasetId
from datanet.records.purposes import canonical_purpose
from identity.certs import Role
from identity.keys import PeerId

__all__ = [
    "DESCRIPTOR_DAYS",
    "SAMPLES_FILE",
    "SAMPLE_DATASETS",
    "TOUR_DATASET",
    "TOUR_SEARCH",
    "TOUR_UPDATED_TITLE",
    "PublishedSample",
    "SampleDataset",
    "Samples",
    "SamplesError",
    "build_descriptor",
    "load_samples",
    "next_sequence",
    "parse_samples",
    "publish_samples",
    "samples_for",
    "sign_for_node",
]

#: Validity of the sample and tour descriptors.
DESCRIPTOR_DAYS = 30
#: The data file in this package that holds the samples.
SAMPLES_FILE = "samples.toml"
_DAY = 86400


class SamplesError(DevnetError):
    """Raised when the sample datasets file is unreadable, damaged or incomplete."""

    code = "devnet_samples_invalid"


@dataclass(frozen=True)
class SampleDataset:
    """A realistic dataset description, turned into a descriptor per organization.

    ``{org}`` in distribution URLs, the description and the spatial coverage is
    replaced by the organization's name. The temporal coverage runs from
    ``since`` to the publication day.
    """

    name: str
    title: str
    description: str
    keywords: tuple[str, ...]
    themes: tuple[str, ...]
    license: str
    schema: str
    distributions: tuple[tuple[str, str, str, int | None], ...]
    since: int
    spatial: str
    access: AccessPolicy


@dataclass(frozen=True)
class Samples:
    """The contents of a samples file: the samples, and what the tour publishes."""

    datasets: tuple[SampleDataset, ...]
    tour: SampleDataset
    tour_updated_title: str
    tour_search: str


class _Reader:
    """Typed access to one TOML table; every error names the file and the entry."""

    def __init__(self, doc: Mapping[str, Any], where: str) -> None:
        self.doc = doc
        self.where = where

    def fail(self, text: str) -> SamplesError:
        return SamplesError(f"{self.where}: {text}")

    def get(self, name: str, kind: type, *, optional: bool = False) -> Any:
        if name not in self.doc and optional:
            return None
        value = self.doc.get(name)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            what = "missing" if name not in self.doc else f"not {_KINDS[kind]}"
            raise self.fail(f"{name!r} is {what}")
        if isinstance(value, str) and not value.strip():
            raise self.fail(f"{name!r} is empty")
        return value

    def strings(self, name: str, *, optional: bool = False) -> tuple[str, ...]:
        value = self.get(name, list, optional=optional)
        if value is None:
            return ()
        if not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(f"{name!r} must be a list of non-empty strings")
        return tuple(value)

    def table(self, name: str, *, optional: bool = False) -> Mapping[str, Any] | None:
        return self.get(name, dict, optional=optional)  # type: ignore[no-any-return]

    def tables(self, name: str) -> list[Mapping[str, Any]]:
        value = self.get(name, list)
        if not value or not all(isinstance(v, dict) for v in value):
            raise self.fail(f"{name!r} must be a non-empty array of tables ([[{name}]])")
        return value  # type: ignore[no-any-return]

    def unknown(self, known: set[str]) -> None:
        extra = sorted(set(self.doc) - known)
        if extra:
            raise self.fail(f"unknown field(s) {', '.join(map(repr, extra))}")


_KINDS = {
    str: "a string",
    int: "an integer",
    list: "a list",
    dict: "a table",
    datetime.date: "a date (YYYY-MM-DD)",
}
_SAMPLE_FIELDS = {
    "name",
    "title",
    "description",
    "keywords",
    "themes",
    "license",
    "schema",
    "since",
    "spatial",
    "access",
    "distributions",
}


def _sample(doc: Mapping[str, Any], where: str) -> SampleDataset:
    read = _Reader(doc, where)
    read.unknown(_SAMPLE_FIELDS)
    name = read.get("name", str)
    read.where = f"{where} ({name})"
    since = read.get("since", datetime.date)
    if isinstance(since, datetime.datetime):
        raise read.fail("'since' must be a date (YYYY-MM-DD), not a date and time")
    access = _Reader(read.table("access") or {}, f"{read.where}: access")
    access.unknown({"mode", "purposes", "max_validity_days"})
    max_days = access.get("max_validity_days", int, optional=True)
    try:
        policy = AccessPolicy(
            mode=access.get("mode", str),
            purposes=tuple(canonical_purpose(p) for p in access.strings("purposes", optional=True)),
            max_validity_days=365 if max_days is None else max_days,
        )
    except DatanetError as exc:
        raise access.fail(str(exc)) from None
    distributions = []
    for i, item in enumerate(read.tables("distributions")):
        dist = _Reader(item, f"{read.where}: distributions[{i}]")
        dist.unknown({"media_type", "title", "access", "size"})
        distributions.append(
            (
                dist.get("media_type", str),
                dist.get("title", str),
                dist.get("access", str),
                dist.get("size", int, optional=True),
            )
        )
    midnight = datetime.datetime(since.year, since.month, since.day, tzinfo=datetime.UTC)
    return SampleDataset(
        name=name,
        title=read.get("title", str),
        description=read.get("description", str),
        keywords=read.strings("keywords"),
        themes=read.strings("themes"),
        license=read.get("license", str),
        schema=read.get("schema", str),
        distributions=tuple(distributions),
        since=int(midnight.timestamp()),
        spatial=read.get("spatial", str),
        access=policy,
    )


def parse_samples(text: str, where: str = SAMPLES_FILE) -> Samples:
    """Parse and check a samples file's text (see ``samples.toml`` for its format).

    Raises:
        SamplesError: the text is not TOML, or an entry lacks a field, has one of
            the wrong type or an unknown one; the message names the entry and field.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SamplesError(f"{where} is not valid TOML: {exc}") from None
    top = _Reader(doc, where)
    top.unknown({"samples", "tour"})
    datasets = tuple(
        _sample(item, f"{where}: samples[{i}]") for i, item in enumerate(top.tables("samples"))
    )
    names = [d.name for d in datasets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise top.fail(f"sample names must be unique; repeated: {', '.join(duplicates)}")
    tour = _Reader(top.table("tour") or {}, f"{where}: tour")
    tour.unknown({"dataset", "updated_title", "search"})
    return Samples(
        datasets=datasets,
        tour=_sample(tour.table("dataset") or {}, f"{where}: tour.dataset"),
        tour_updated_title=tour.get("updated_title", str),
        tour_search=tour.get("search", str),
    )


def load_samples() -> Samples:
    """Load and check the package's ``samples.toml``.

    Raises:
        SamplesError: the file is missing from the installation or is invalid.
    """
    where = f"datanet/devnet/{SAMPLES_FILE}"
    try:
        text = resources.files(__package__).joinpath(SAMPLES_FILE).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SamplesError(f"cannot read {where}: {exc}") from None
    return parse_samples(text, where)


_SAMPLES = load_samples()
#: The samples organizations publish, in rotation (see :func:`samples_for`).
SAMPLE_DATASETS: tuple[SampleDataset, ...] = _SAMPLES.datasets
#: The dataset the tour publishes, then updates (first and second title).
TOUR_DATASET: SampleDataset = _SAMPLES.tour
TOUR_UPDATED_TITLE: str = _SAMPLES.tour_updated_title
TOUR_SEARCH: str = _SAMPLES.tour_search


def samples_for(org_index: int, per_org: int) -> list[SampleDataset]:
    """The samples organization ``org_index`` publishes: ``per_org`` of them, rotating."""
    count = len(SAMPLE_DATASETS)
    return [SAMPLE_DATASETS[(org_index * per_org + j) % count] for j in range(min(per_org, count))]


def build_descriptor(
    sample: SampleDataset,
    org: DevnetOrg,
    node: PeerId,
    *,
    sequence: int,
    now: int,
    title: str | None = None,
) -> Descriptor:
    """The descriptor of ``sample`` for ``org``, published by ``node`` at ``now``.

    Raises:
        InvalidInput, RecordTooLarge: a field breaks the descriptor's limits.
    """
    today = now - now % _DAY
    return Descriptor(
        dataset_id=DatasetId(org.org_id, sample.name),
        title=title or sample.title,
        description=sample.description.format(org=org.name),
        keywords=sample.keywords,
        themes=sample.themes,
        publisher_node=node,
        license=sample.license,
        version=f"{sequence}.0",
        issued=min(sample.since, now),
        modified=now,
        schema=sample.schema.format(org=org.name),
        distributions=tuple(
            Distribution(media_type, dist_title, access.format(org=org.name), size)
            for media_type, dist_title, access, size in sample.distributions
        ),
        temporal=(sample.since, max(sample.since, today)),
        spatial=sample.spatial.format(org=org.name),
        access_policy=sample.access,
        sequence=sequence,
        expires=now + DESCRIPTOR_DAYS * _DAY,
    )


def sign_for_node(node: DevnetNode, desc: Descriptor, now: int) -> bytes:
    """Sign ``desc`` with ``node``'s key and its publisher certificate of the dataset's org.

    Raises:
        NotFound: the node holds no valid publisher certificate of that org.
        DatanetError: the descriptor cannot be signed (see ``sign_descriptor``).
    """
    home = Home(node.home)
    chain = home.membership_chain(now, org=desc.dataset_id.org, role=Role.PUBLISHER)
    return sign_descriptor(desc, node.key, chain)


def next_sequence(client: Client, dataset_id: DatasetId) -> tuple[int, Resolved | None]:
    """The sequence number to publish ``dataset_id`` with next, and what is held now."""
    try:
        held = client.resolve(dataset_id)
    except NotFound:
        return 1, None
    return held.sequence + 1, held


@dataclass(frozen=True)
class PublishedSample:
    """A sample dataset after :func:`publish_samples`.

    ``replicas`` is None when a valid copy was already published (a restarted
    devnet keeps its datasets) and nothing was sent.
    """

    dataset_id: str
    title: str
    org: str
    node: DevnetNode
    sequence: int
    replicas: int | None
    ms: float


def publish_samples(
    devnet: Devnet,
    *,
    now: int,
    per_org: int = 3,
    on_published: Callable[[PublishedSample], None] | None = None,
    timeout: float = 30.0,
) -> list[PublishedSample]:
    """Publish ``per_org`` sample datasets per organization through its first node's API.

    A dataset its node already holds, valid for more than a day, is kept as it is.

    Raises:
        DatanetError: signing or publishing failed (the API's own error).
    """
    out = []
    for index, org in enumerate(devnet.orgs):
        node = devnet.publisher_of(org)
        with Client(node.home, timeout=timeout) as client:
            for sample in samples_for(index, per_org):
                started = time.perf_counter()
                dataset_id = DatasetId(org.org_id, sample.name)
                sequence, held = next_sequence(client, dataset_id)
                if held is not None and _valid_until(held) > now + RENEW_MARGIN:
                    result = PublishedSample(
                        str(dataset_id),
                        str(held.descriptor.get("title", "")),
                        org.name,
                        node,
                        held.sequence,
                        None,
                        _ms(started),
                    )
                else:
                    desc = build_descriptor(sample, org, node.peer_id, sequence=sequence, now=now)
                    published = client.publish(sign_for_node(node, desc, now))
                    result = PublishedSample(
                        published.dataset_id or str(desc.dataset_id),
                        desc.title,
                        org.name,
                        node,
                        published.sequence,
                        published.replicas,
                        _ms(started),
                    )
                out.append(result)
                if on_published is not None:
                    on_published(result)
    return out


def _valid_until(found: Resolved) -> int:
    expires = found.descriptor.get("expires")
    limit = expires if isinstance(expires, int) else 0
    return min(limit, found.certificate.not_after)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
