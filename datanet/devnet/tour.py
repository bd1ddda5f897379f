"""The devnet tour: publish → resolve → update → resolve → search → ask for access.

The access part: another org's node asks for the open dataset and is granted at
once; asks for a restricted variant, waits, and is granted when the owner's
operator approves; asks it for a purpose it does not allow and is denied with
the reason.

Every step goes through a node's HTTP API (:class:`datanet.client.Client`) and
is narrated as a :class:`TourStep`; ``datanet devnet --tour`` prints them.

Invariant: a step that fails or shows the wrong result raises :class:`TourFailed`
naming the step; nothing after it runs.
"""

from __future__ import annotations

import dataclasses
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
from datanet.records.policy import AccessPolicy

__all__ = ["RESTRICTED_DATASET", "TourFailed", "TourStep", "run_tour"]

#: The tour's restricted dataset: raw readings given out on request, for research only.
RESTRICTED_DATASET = dataclasses.replace(
    TOUR_DATASET,
    name=TOUR_DATASET.name + "-raw",
    title=TOUR_DATASET.title.split(" (")[0] + " (raw gauge readings)",
    access=AccessPolicy(
        mode="request", purposes=("research-and-development",), max_validity_days=90
    ),
)


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
        _access_steps(
            devnet,
            pub=pub,
            read=read,
            publisher=publisher,
            reader=reader,
            now=now,
            record=record,
            step_failed=step_failed,
        )
    return steps


def _access_steps(
    devnet: Devnet,
    *,
    pub: Client,
    read: Client,
    publisher: DevnetNode,
    reader: DevnetNode,
    now: int,
    record: Callable[..., None],
    step_failed: Callable[[str, BaseException | str], TourFailed],
) -> None:
    """Granted at once; waits and is approved; denied with its reason."""
    org = devnet.orgs[0]
    open_id = DatasetId(org.org_id, TOUR_DATASET.name)
    restricted_id = DatasetId(org.org_id, RESTRICTED_DATASET.name)

    # 6. an open dataset: granted at once, signed by the owner
    started = time.perf_counter()
    try:
        granted = read.request_access(str(open_id), "academic-research", days=30)
    except DatanetError as exc:
        raise step_failed("request", exc) from exc
    if granted.grant is None:
        raise step_failed("request", f"expected a grant, got {granted.state}")
    record(
        "request",
        reader,
        f"{reader.name} asks for {open_id} for academic-research: granted at once by "
        f"{_short(granted.grant.issuer_node)} (grant {granted.grant.grant_id[:12]}, "
        f"{len(granted.grant.route)} hop(s))",
        started,
        grant_id=granted.grant.grant_id,
        route=[h.node for h in granted.grant.route],
    )

    # 7. a restricted dataset: the request waits for the owner's operator, who approves
    started = time.perf_counter()
    try:
        sequence, _ = next_sequence(pub, restricted_id)
        desc = build_descriptor(
            RESTRICTED_DATASET, org, publisher.peer_id, sequence=sequence, now=now
        )
        pub.publish(sign_for_node(publisher, desc, now))
        _wait_for(read, restricted_id, sequence)
        pending = read.request_access(
            str(restricted_id), "scientific-research", days=30, note="flood model calibration"
        )
        if pending.state != "pending":
            raise step_failed("approve", f"expected the request to wait, got {pending.state}")
        request_id = pending.request.request_id
        pub.approve_request(request_id)
        approved = read.refresh_request(request_id)
    except DatanetError as exc:
        raise step_failed("approve", exc) from exc
    if approved.grant is None:
        raise step_failed("approve", f"expected a grant after approval, got {approved.state}")
    record(
        "approve",
        publisher,
        f"{reader.name} asks for {restricted_id} (access on request): it waits; "
        f"{publisher.name}'s operator approves request {request_id[:12]} and "
        f"{reader.name} gets grant {approved.grant.grant_id[:12]}",
        started,
        request_id=request_id,
        grant_id=approved.grant.grant_id,
    )

    # 8. a purpose the policy does not allow: denied, with the reason
    started = time.perf_counter()
    try:
        denied = read.request_access(str(restricted_id), "marketing", days=30)
    except DatanetError as exc:
        raise step_failed("deny", exc) from exc
    if denied.denial is None:
        raise step_failed("deny", f"expected a denial, got {denied.state}")
    record(
        "deny",
        reader,
        f"{reader.name} asks for {restricted_id} for marketing: denied, "
        f"{denied.denial.reason} ({denied.denial.explanation})",
        started,
        reason=denied.denial.reason,
    )


def _wait_for(client: Client, dataset_id: DatasetId, sequence: int, timeout: float = 10.0) -> None:
    """Until ``client``'s node holds ``sequence`` of ``dataset_id`` (gossip takes a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.resolve(dataset_id).sequence >= sequence:
                return
        except DatanetError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            return
        time.sleep(0.1)


def _short(peer: str) -> str:
    return f"{peer[:12]}…{peer[-4:]}" if len(peer) > 20 else peer


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
