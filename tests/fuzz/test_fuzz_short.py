"""The short fuzz run of ``make test``: every target on a few thousand mutated inputs.

The long, coverage-guided run is ``make fuzz`` (atheris, see ``tests/fuzz/run.py``);
here each target runs in-process on mutants of its seed corpus (deterministic, about
a second per target), and one target runs through the atheris runner to keep it honest.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.fuzz.mutate import mutations
from tests.fuzz.run import run_target
from tests.fuzz.seeds import SEEDS, corpus
from tests.fuzz.targets import TARGETS, Crash, run_one

#: Inputs per target in the short run.
SHORT_INPUTS = 2000


def _corpus(target: str) -> list[bytes]:
    return corpus(target)


def test_every_target_has_seeds_and_a_committed_corpus() -> None:
    assert sorted(TARGETS) == sorted(SEEDS)
    for name in TARGETS:
        assert _corpus(name), f"tests/fuzz/corpus/{name} is empty"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_seeds_decode(target: str) -> None:
    """Seeds are real records the target accepts: fuzzing starts past the first check."""
    for data in _corpus(target):
        TARGETS[target](data)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_short_fuzz(target: str) -> None:
    fn = TARGETS[target]
    slowest = 0.0
    for data in mutations(_corpus(target), SHORT_INPUTS, seed=len(target)):
        started = time.perf_counter()
        try:
            run_one(fn, data)
        except Crash as exc:
            raise AssertionError(f"{target} crashed on {data!r}: {exc}") from exc
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 1.0, f"{target}: an input took {slowest:.2f} s"


def test_run_one_reports_undocumented_errors() -> None:
    def broken(data: bytes) -> None:
        raise KeyError(data)

    with pytest.raises(Crash, match="KeyError"):
        run_one(broken, b"x")


@pytest.mark.slow
def test_the_atheris_runner_fuzzes_a_target(tmp_path: Path) -> None:
    result = run_target("admission_hello", 2000, artifacts=tmp_path, timeout=240)
    assert result["crashes"] == 0, result
    assert result["inputs"] >= 2000
    assert result["rss_start_mb"]
    assert result["rss_end_mb"]
