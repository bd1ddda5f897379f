"""datanet.node.feed: query matching, per-subscriber bounds, overflow markers, unsubscribe."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from datanet.errors import InvalidInput
from datanet.node.feed import (
    MAX_QUERY_LENGTH,
    OVERFLOW,
    CatalogEvent,
    CatalogFeed,
    event_for,
    matches,
    tokens,
)
from datanet.testing.clock import NOW
from datanet.testing.doubles import MemoryNode
from datanet.testing.records import descriptor, key

ORG = "did:key:z6MkTest"


def ev(
    n: int = 1,
    *,
    kind: str = "new",
    title: str = "Daily weather",
    keywords: tuple[str, ...] = ("rain",),
    themes: tuple[str, ...] = (),
    description: str = "",
    reason: str | None = None,
) -> CatalogEvent:
    return CatalogEvent(
        kind,
        f"dn://{ORG}/d{n}",
        n,
        ORG,
        title=title,
        keywords=keywords,
        themes=themes,
        description=description,
        reason=reason,
        at=float(NOW + n),
    )


# --- matching -------------------------------------------------------------------------


def test_tokens_fold_case_and_accents() -> None:
    assert tokens("Météo-France: Straße, ÉTÉ 2024") == [
        "meteo",
        "france",
        "strasse",
        "ete",
        "2024",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", True),
        ("   ", True),
        ("!!", True),  # no word token: everything
        ("weather", True),
        ("WEATH", True),  # prefix, case-folded
        ("wéather", True),  # accents folded on both sides
        ("rain daily", True),  # every token, any field, any order
        ("rain snow", False),
        ("eather", False),  # a prefix, not a substring
        ("weathers", False),  # no stemming
        ("temp", True),  # description
        ("clim", True),  # themes
        ('"daily" AND title:weather*', False),  # "and" is a word too; no syntax
        ('"daily" (weather*)', True),  # ...and punctuation is not
    ],
)
def test_matches(query: str, expected: bool) -> None:
    event = ev(title="Daily Weather", themes=("Climate",), description="Temperatures by station")
    assert matches(query, event) is expected


def test_withdrawn_events_match_on_the_text_they_carry() -> None:
    with_text = ev(kind="withdrawn", reason="deprecated")
    bare = CatalogEvent("withdrawn", f"dn://{ORG}/x", 3, ORG, reason="expired")
    assert matches("weather", with_text)
    assert not matches("snow", with_text)
    assert matches("", bare)
    assert not matches("weather", bare)


def test_query_bounds_and_event_validation() -> None:
    with pytest.raises(InvalidInput, match="at most"):
        matches("x" * (MAX_QUERY_LENGTH + 1), ev())
    assert matches("x" * MAX_QUERY_LENGTH, ev(title="x" * MAX_QUERY_LENGTH))
    with pytest.raises(InvalidInput):
        CatalogEvent("created", "dn://x/y", 1, ORG)
    with pytest.raises(InvalidInput):
        CatalogEvent("withdrawn", "dn://x/y", 1, ORG, reason="bored")


def test_to_json_and_event_for() -> None:
    org = key("\x02")
    desc = descriptor("weather/daily", org=org, node=key("\x01"), title="T", themes=("env",))
    event = event_for("withdrawn", desc, at=5.0, reason="deprecated", sequence=9)
    assert event.to_json() == {
        "kind": "withdrawn",
        "dataset_id": f"dn://{org.org_id}/weather/daily",
        "sequence": 9,
        "org": str(org.org_id),
        "title": "T",
        "keywords": list(desc.keywords),
        "themes": ["env"],
        "description": desc.description,
        "reason": "deprecated",
        "at": 5.0,
    }
    assert CatalogEvent.overflow(3, 7.0).to_json() == {"kind": OVERFLOW, "lost": 3, "at": 7.0}


# --- the feed ---------------------------------------------------------------------------


async def test_subscribers_get_matching_events_in_order() -> None:
    feed = CatalogFeed()
    async with feed.subscribe() as everything, feed.subscribe("rain") as rain:
        assert feed.subscribers == 2
        feed.publish(ev(1))
        feed.publish(ev(2, keywords=("snow",)))
        feed.publish(ev(3, kind="updated"))
        got_all = [await everything.__anext__() for _ in range(3)]
        got_rain = [await rain.__anext__() for _ in range(2)]
    assert [e.sequence for e in got_all] == [1, 2, 3]
    assert [(e.sequence, e.kind) for e in got_rain] == [(1, "new"), (3, "updated")]
    assert feed.subscribers == 0
    assert feed.published == 3


async def test_a_waiting_subscriber_wakes_up() -> None:
    feed = CatalogFeed()
    got: list[CatalogEvent] = []

    async def watch(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with feed.subscribe("weather") as events:
            task_status.started()
            async for event in events:
                got.append(event)
                if len(got) == 2:
                    return

    async with trio.open_nursery() as nursery:
        await nursery.start(watch)
        await trio.testing.wait_all_tasks_blocked()
        feed.publish(ev(1))
        feed.publish(ev(2, title="Other"))  # not matched
        await trio.testing.wait_all_tasks_blocked()
        feed.publish(ev(3))
    assert [e.sequence for e in got] == [1, 3]
    assert feed.subscribers == 0


async def test_overflow_is_marked_where_events_were_lost() -> None:
    feed = CatalogFeed(buffer=3)
    async with feed.subscribe() as events:
        for n in range(1, 7):  # 1..3 fit, 4..6 are lost
            feed.publish(ev(n))
        assert events.queued == 3
        got = [await events.__anext__()]  # room for one: the next publish puts the marker
        feed.publish(ev(7))  # the marker took the slot, 7 is lost too
        feed.publish(ev(8))  # still full
        got += [await events.__anext__() for _ in range(2)]
        feed.publish(ev(9))  # one marker (not two in a row), then 9
        got += [await events.__anext__() for _ in range(2)]
        assert events.queued == 0
    assert [e.sequence for e in got[:3]] == [1, 2, 3]
    marker = got[3]
    assert marker.kind == OVERFLOW
    assert marker.lost == 5  # 4, 5, 6, 7, 8
    assert marker.at == float(NOW + 8)
    assert got[4].sequence == 9


async def test_overflow_marker_when_the_queue_runs_dry_or_the_feed_closes() -> None:
    feed = CatalogFeed(buffer=2)
    async with feed.subscribe() as events:
        for n in range(1, 6):
            feed.publish(ev(n))
        feed.close()
        got = [event async for event in events]
    assert [e.sequence for e in got[:2]] == [1, 2]
    assert got[2].kind == OVERFLOW
    assert got[2].lost == 3
    assert len(got) == 3
    feed.publish(ev(9))  # a closed feed drops events quietly
    assert feed.published == 5


async def test_a_slow_subscriber_does_not_hold_back_a_fast_one() -> None:
    feed = CatalogFeed(buffer=2)
    async with feed.subscribe() as slow, feed.subscribe() as fast:
        for n in range(1, 11):
            feed.publish(ev(n))
            assert (await fast.__anext__()).sequence == n
        assert slow.queued == 2
    assert feed.subscribers == 0


async def test_subscriber_limit_and_long_queries_are_refused() -> None:
    feed = CatalogFeed(max_subscribers=2)
    with pytest.raises(InvalidInput, match="at most"):
        feed.subscribe("q" * (MAX_QUERY_LENGTH + 1))
    async with feed.subscribe(), feed.subscribe():
        with pytest.raises(InvalidInput, match="too many catalog watchers"):
            async with feed.subscribe():
                pass
        assert feed.subscribers == 2
    assert feed.subscribers == 0
    async with feed.subscribe():  # room again
        assert feed.subscribers == 1


async def test_leaving_the_block_unsubscribes_even_when_cancelled() -> None:
    feed = CatalogFeed()
    with trio.move_on_after(0.01):  # not a timing assertion: only a way to cancel
        async with feed.subscribe() as events:
            assert feed.subscribers == 1
            async for _ in events:
                pass
    assert feed.subscribers == 0
    async with feed.subscribe() as events:
        pass
    feed.publish(ev(1))
    assert [e async for e in events] == []  # ended: nothing more after exit


def test_constructor_bounds() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CatalogFeed(buffer=0)
    with pytest.raises(ValueError, match="at least 1"):
        CatalogFeed(max_subscribers=0)


async def test_memory_node_publishes_catalog_changes() -> None:
    node = MemoryNode()
    async with node.feed.subscribe() as events:
        await node.publish(node.make_descriptor("a", title="Rainfall"))
        await node.publish(node.make_descriptor("a", title="Rainfall", sequence=1))  # same: none
        await node.publish(node.make_descriptor("a", title="Rainfall v2", sequence=2))
        outcome = await node.deprecate(node.make_dataset_id("a"), reason="superseded")
        got = [await events.__anext__() for _ in range(3)]
    assert [(e.kind, e.sequence) for e in got] == [("new", 1), ("updated", 2), ("withdrawn", 3)]
    assert got[2].reason == "deprecated"
    assert got[2].title == "Rainfall v2"
    assert got[0].at == float(node.now)
    assert outcome.sequence == 3
