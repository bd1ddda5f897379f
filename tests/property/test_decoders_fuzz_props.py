"""Property tests of every decoder a fuzz target covers (tests/fuzz/targets.py): arbitrary
bytes and mutated valid encodings are refused with a documented DatanetError, never
anything else, and whatever decodes survives its round trip."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.seeds import corpus
from tests.fuzz.targets import TARGETS, run_one

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NAMES = sorted(TARGETS)


@st.composite
def mutated(draw: st.DrawFn, target: str) -> bytes:
    """A seed of ``target`` with a few bytes replaced, inserted or cut."""
    buf = bytearray(draw(st.sampled_from(corpus(target))))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(buf)))
        op = draw(st.sampled_from(["set", "insert", "cut"]))
        if op == "set" and pos < len(buf):
            buf[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = draw(st.binary(min_size=1, max_size=9))
        else:
            del buf[pos : pos + draw(st.integers(1, 64))]
    return bytes(buf)


@pytest.mark.parametrize("target", NAMES)
@SETTINGS
@given(data=st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_documented_errors(target: str, data: bytes) -> None:
    run_one(TARGETS[target], data)


@pytest.mark.parametrize("target", NAMES)
@SETTINGS
@given(data=st.data())
def test_mutated_encodings_raise_only_documented_errors(target: str, data: st.DataObject) -> None:
    run_one(TARGETS[target], data.draw(mutated(target)))


@SETTINGS
@given(data=st.binary(max_size=64))
def test_a_crash_is_reported_not_swallowed(data: bytes) -> None:
    """The harness itself can fail: an undocumented exception is a Crash."""
    from tests.fuzz.targets import Crash

    def picky(raw: bytes) -> None:
        raise IndexError(len(raw))

    with pytest.raises(Crash):
        run_one(picky, data)
