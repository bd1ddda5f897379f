"""Policy evaluation: the order of checks, each denial's reason and message."""

from __future__ import annotations

from typing import Any

import pytest

from datanet.records.policy import DENIAL_REASONS, AccessPolicy, evaluate
from datanet.testing.clock import NOW
from datanet.testing.records import ORG_A, ORG_B

POLICY = AccessPolicy("open", (ORG_B.org_id,), ("research",), 90)


def run(policy: AccessPolicy = POLICY, **changes: Any):  # type: ignore[no-untyped-def]
    args: dict[str, Any] = {
        "current_sequence": 5,
        "request_sequence": 5,
        "org": ORG_B.org_id,
        "purpose": "academic-research",
        "validity_days": 30,
        "deadline": NOW + 60,
        "now": NOW,
    }
    args.update(changes)
    return evaluate(policy, **args)


def test_open_grants_request_queues() -> None:
    verdict = run()
    assert (verdict.outcome, verdict.reason) == ("grant", None)
    queued = run(AccessPolicy("request", (), (), 90))
    assert (queued.outcome, queued.reason) == ("queue", None)


@pytest.mark.parametrize(
    ("policy", "changes", "reason", "words"),
    [
        (POLICY, {"now": NOW + 60}, "expired", "deadline"),
        (AccessPolicy("closed"), {}, "dataset_closed", "closed"),
        (POLICY, {"request_sequence": 4}, "descriptor_outdated", "resolve the dataset again"),
        (POLICY, {"request_sequence": 6}, "dataset_unknown", "resolve the dataset again"),
        (POLICY, {"org": ORG_A.org_id}, "org_not_allowed", "organization"),
        (POLICY, {"purpose": "marketing"}, "purpose_not_allowed", "--purpose research"),
        (POLICY, {"validity_days": 91}, "validity_too_long", "--days 90 or fewer"),
    ],
)
def test_each_denial(
    policy: AccessPolicy, changes: dict[str, Any], reason: str, words: str
) -> None:
    verdict = run(policy, **changes)
    assert verdict.outcome == "deny"
    assert verdict.reason == reason
    assert reason in DENIAL_REASONS
    assert words in verdict.message


def test_first_failing_check_wins() -> None:
    verdict = run(AccessPolicy("closed"), now=NOW + 60, request_sequence=1)
    assert verdict.reason == "expired"
    verdict = run(POLICY, org=ORG_A.org_id, purpose="marketing", validity_days=1000)
    assert verdict.reason == "org_not_allowed"
