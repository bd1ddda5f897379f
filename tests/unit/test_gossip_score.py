"""Unit tests of GossipSub v1.1 peer scoring (routing/gossip/score.py)."""

from __future__ import annotations

import pytest

from identity.errors import InvalidInput
from routing.gossip.score import PeerScores, ScoreParams, ScoreThresholds, TopicScoreParams

T = "topic"
P, Q = b"peer-p", b"peer-q"


def scores(**topic: float) -> PeerScores:
    s = PeerScores(ScoreParams(topic=TopicScoreParams(**topic)))  # type: ignore[arg-type]
    s.add_peer(P, None, 0.0)
    return s


def test_unknown_peer_scores_zero() -> None:
    assert PeerScores(ScoreParams()).score(b"nobody", 0.0) == 0.0


def test_p1_time_in_mesh_is_capped() -> None:
    s = scores(time_in_mesh_weight=1.0, time_in_mesh_quantum=1.0, time_in_mesh_cap=10.0)
    s.graft(P, T, 0.0)
    assert s.score(P, 5.0) == pytest.approx(5.0)
    assert s.score(P, 500.0) == pytest.approx(10.0)
    s.prune(P, T)
    assert s.score(P, 600.0) == 0.0


def test_p2_first_deliveries_capped_and_decaying() -> None:
    s = scores(time_in_mesh_weight=0.0, first_message_deliveries_cap=3.0)
    for _ in range(5):
        s.first_delivery(P, T)
    assert s.score(P, 0.0) == pytest.approx(3.0)
    s.decay(1.0)
    assert s.score(P, 1.0) == pytest.approx(3.0 * 0.995)


def test_p3_deficit_only_after_activation_and_p3b_sticky() -> None:
    s = scores(
        time_in_mesh_weight=0.0,
        mesh_message_deliveries_weight=-1.0,
        mesh_message_deliveries_threshold=4.0,
        mesh_message_deliveries_activation=5.0,
        mesh_failure_penalty_weight=-1.0,
        mesh_failure_penalty_decay=0.5,
    )
    s.graft(P, T, 0.0)
    s.decay(1.0)
    assert s.score(P, 1.0) == 0.0  # not active yet
    s.first_delivery(P, T)  # P2 +1, P3 counter 1
    s.decay(6.0)
    s.first_delivery(P, T)
    # P2 = 1*0.995 + 1; P3 deficit = 4 - (1*0.97 + 1)
    deficit = 4 - (0.97 + 1)
    assert s.score(P, 6.0) == pytest.approx(0.995 + 1 - deficit**2)
    s.prune(P, T)  # sticky failure penalty
    assert s.score(P, 6.0) == pytest.approx(0.995 + 1 - deficit**2)
    s.decay(7.0)
    assert s.score(P, 7.0) < 0.995 + 1


def test_p4_invalid_is_squared() -> None:
    s = scores()
    s.invalid(P, T)
    s.invalid(P, T)
    assert s.score(P, 0.0) == pytest.approx(-10.0 * 4)


def test_topic_cap_bounds_only_positive_contributions() -> None:
    s = PeerScores(ScoreParams(topic_score_cap=2.0))
    s.add_peer(P, None, 0.0)
    for _ in range(10):
        s.first_delivery(P, T)
    assert s.score(P, 0.0) == pytest.approx(2.0)


def test_p5_p6_p7() -> None:
    s = PeerScores(ScoreParams(ip_colocation_factor_threshold=1))
    s.add_peer(P, "1.2.3.4", 0.0)
    s.add_peer(Q, "1.2.3.4", 0.0)
    assert s.score(P, 0.0) == pytest.approx(-5.0)
    s.set_app_score(P, 7.0)
    assert s.score(P, 0.0) == pytest.approx(2.0)
    s.penalise(Q, 2.0)
    assert s.score(Q, 0.0) == pytest.approx(-5.0 - 10.0 * 4)


def test_decay_reaches_zero() -> None:
    s = scores()
    s.invalid(P, T)
    for i in range(2000):
        s.decay(float(i))
    assert s.score(P, 2000.0) == 0.0


def test_bad_scores_are_retained_good_ones_are_not() -> None:
    s = PeerScores(ScoreParams(retain_score=10.0))
    s.add_peer(P, None, 0.0)
    s.add_peer(Q, None, 0.0)
    s.invalid(P, T)
    s.first_delivery(Q, T)
    s.remove_peer(P, 1.0)
    s.remove_peer(Q, 1.0)
    assert s.retained == 1
    s.add_peer(P, None, 2.0)
    s.add_peer(Q, None, 2.0)
    assert s.score(P, 2.0) < 0
    assert s.score(Q, 2.0) == 0.0
    s.remove_peer(P, 3.0)
    s.decay(20.0)  # retention over
    assert s.retained == 0
    s.add_peer(P, None, 21.0)
    assert s.score(P, 21.0) == 0.0


def test_parameters_are_checked() -> None:
    with pytest.raises(InvalidInput):
        TopicScoreParams(invalid_message_deliveries_weight=1.0)
    with pytest.raises(InvalidInput):
        ScoreParams(behaviour_penalty_weight=1.0)
    with pytest.raises(InvalidInput):
        ScoreThresholds(gossip_threshold=-100.0, publish_threshold=-50.0)
