"""The localnet worker's ``tracemalloc`` op: where a worker's memory grew between two calls."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import trio

from datanet.errors import InvalidInput
from datanet.testing.localnet_worker import _Runner


def runner() -> _Runner:
    return _Runner(SimpleNamespace(slots=[]), trio.Event())  # type: ignore[arg-type]


@pytest.fixture
def tracing() -> Iterator[None]:
    was = tracemalloc.is_tracing()
    tracemalloc.start(4)
    try:
        yield
    finally:
        if not was:
            tracemalloc.stop()


async def test_without_tracing_the_op_says_how_to_turn_it_on() -> None:
    if tracemalloc.is_tracing():
        pytest.skip("tracemalloc is on for the whole test run")
    with pytest.raises(InvalidInput, match="DATANET_TRACEMALLOC"):
        await runner().run({"op": "tracemalloc"})


async def test_the_second_call_names_what_grew_since_the_first(tracing: None) -> None:
    r = runner()
    first = await r.run({"op": "tracemalloc"})
    assert first["sites"] == []  # the baseline
    kept = [bytes(1000) + bytes([i % 256]) for i in range(2000)]  # ~2 MB, on this line
    second = await r.run({"op": "tracemalloc", "limit": 3})
    assert kept
    assert 1 <= len(second["sites"]) <= 3
    top = second["sites"][0]
    assert top["size_diff_kb"] > 1500
    assert top["count_diff"] >= 2000
    assert any("test_localnet_tracemalloc.py" in line for line in top["traceback"])
    # the baseline moved: the same list did not grow since
    third = await r.run({"op": "tracemalloc", "key": "lineno", "limit": 50})
    ours = [s for s in third["sites"] if any("kept = [" in line for line in s["traceback"])]
    assert all(abs(site["size_diff_kb"]) < 100 for site in ours), ours


@pytest.mark.parametrize(
    "cmd", [{"key": "filename"}, {"limit": 0}, {"limit": 51}, {"limit": "3"}, {"reset": 1}]
)
async def test_bad_arguments_are_refused(tracing: None, cmd: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        await runner().run({"op": "tracemalloc", **cmd})
