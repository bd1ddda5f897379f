"""The devnet tour: publish → resolve from another org's node → update → resolve → search.

Every step goes through a node's HTTP API (:class:`datanet.client.Client`) and
is narrated as a :class:`TourStep`; ``datanet devnet --tour`` prints them.

Invariant: a step that fails or shows the wrong result raises :class:`TourFailed`
naming the step; nothing after it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from datanet.client import Client
from datanet.devnet.layout import Devnet, DevnetError, DevnetNode
from datanet.devnet.samples import (
    TOUR_DATASET,
    TOUR_SEARCH,
    TOUR_UPDATED_TITLE,
    build_descriptor,
    next_sequence,
    sign_for_node,
)
from datanet.errors import DatanetError
from datanet.records.ids import DatasetId

__all__ = ["TourFailed", "TourStep", "run_tour"]


class TourFailed(DevnetError):
    """Raised when a step of the tour fails; the message names the step."""

    code = "tour_failed"


@dataclass(frozen=True)
class TourStep:
    """One narrated step of the tour: what was done, on which node, how long it took."""

    number: int
    action: str
    node: DevnetNode
    text: str
    ms: float
    detail: dict[str, Any] = field(default_factory=dict)


def run_tour(
    devnet: Devnet,
    *,
    now: int,
    on_step: Callable[[TourStep], None] | None = None,
    timeout: float = 30.0,
) -> list[TourStep]:
    """Publish → resolve from another org's node → update → resolve from the network → search.

    Every step goes through a node's HTTP API. The first organization publishes
    :data:`TOUR_DATASET` from its first node; the first node of another
    organization resolves it, sees the update after asking the network again
    (``refresh``), and finds it by full-text search.

    Raises:
        InvalidInput: the devnet has a single organization.
        TourFailed: a step failed or showed the wrong result; names the step.
    """
    org = devnet.orgs[0]
    publisher = devnet.publisher_of(org)
    reader = devnet.outsider(org)
    steps: list[TourStep] = []
    dataset_id = DatasetId(org.org_id, TOUR_DATASET.name)

    def record(action: str, node: DevnetNode, text: str, started: float, **detail: Any) -> None:
        step = TourStep(len(steps) + 1, action, node, text, _ms(started), detail)
        steps.append(step)
        if on_step is not None:
            on_step(step)

    def step_failed(action: str, exc: BaseException | str) -> TourFailed:
        return TourFailed(f"tour step {len(steps) + 1} ({action}) failed: {exc}")

    with (
        Client(publisher.home, timeout=timeout) as pub,
        Client(reader.home, timeout=timeout) as read,
    ):
        # 1. publish
        started = time.perf_counter()
        try:
            sequence, _ = next_sequence(pub, dataset_id)
            desc = build_descriptor(
                TOUR_DATASET, org, publisher.peer_id, sequence=sequence, now=now
            )
            published = pub.publish(sign_for_node(publisher, desc, now))
        except DatanetError as exc:
            raise step_failed("publish", exc) from exc
        record(
            "publish",
            publisher,
            f'{org.name} publishes {dataset_id} "{desc.title}" (sequence {published.sequence}) '
            f"from {publisher.name}; stored on {published.replicas} peer(s)",
            started,
            dataset_id=str(dataset_id),
            sequence=published.sequence,
            replicas=published.replicas,
        )

        # 2. resolve from another organization's node
        started = time.perf_counter()
        try:
            found = read.resolve(dataset_id)
        except DatanetError as exc:
            raise step_failed("resolve", exc) from exc
        if found.sequence != sequence:
            raise step_failed("resolve", f"got sequence {found.sequence}, expected {sequence}")
        record(
            "resolve",
            reader,
            f'{reader.name} of {reader.org.name} resolves it: "{found.descriptor.get("title")}" '
            f"(sequence {found.sequence}), signed by {found.certificate.org_name}'s node "
            f"{_short(found.certificate.node)}",
            started,
            sequence=found.sequence,
            title=found.descriptor.get("title"),
            signed_by=found.certificate.node,
        )

        # 3. update: a higher sequence and a new title
        started = time.perf_counter()
        sequence += 1
        try:
            desc = build_descriptor(
                TOUR_DATASET,
                org,
                publisher.peer_id,
                sequence=sequence,
                now=now,
                title=TOUR_UPDATED_TITLE,
            )
            updated = pub.publish(sign_for_node(publisher, desc, now))
        except DatanetError as exc:
            raise step_failed("update", exc) from exc
        record(
            "update",
            publisher,
            f"{org.name} publishes sequence {updated.sequence} with the new title "
            f'"{TOUR_UPDATED_TITLE}"; stored on {updated.replicas} peer(s)',
            started,
            sequence=updated.sequence,
            replicas=updated.replicas,
        )

        # 4. resolve again, asking the network
        started = time.perf_counter()
        try:
            again = read.resolve(dataset_id, refresh=True)
        except DatanetError as exc:
            raise step_failed("resolve", exc) from exc
        title = again.descriptor.get("title")
        if again.sequence != sequence or title != TOUR_UPDATED_TITLE:
            raise step_failed(
                "resolve", f"got sequence {again.sequence} {title!r}, expected the update"
            )
        record(
            "resolve",
            reader,
            f"{reader.name} asks the network again (refresh) and gets the new version: "
            f'"{title}" (sequence {again.sequence})',
            started,
            sequence=again.sequence,
            title=title,
            refresh=True,
        )

        # 5. search
        started = time.perf_counter()
        try:
            hits = read.search(TOUR_SEARCH).hits
        except DatanetError as exc:
            raise step_failed("search", exc) from exc
        ours = [h for h in hits if h.dataset_id == str(dataset_id)]
        if not ours:
            raise step_failed("search", f"no hit for {dataset_id} among {len(hits)}")
        record(
            "search",
            reader,
            f"{reader.name} searches its catalog for {TOUR_SEARCH!r}: {len(hits)} hit(s), "
            f'including "{ours[0].title}"',
            started,
            query=TOUR_SEARCH,
            hits=[h.dataset_id for h in hits],
        )
    return steps


def _short(peer: str) -> str:
    return f"{peer[:12]}…{peer[-4:]}" if len(peer) > 20 else peer


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
