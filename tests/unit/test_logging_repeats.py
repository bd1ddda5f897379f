"""The daemon's log handler: repeated lines summarised, libp2p's own level (issue 12, gap 6)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from datanet.daemon import LOG_MAX_REPEATS, RepeatFilter, setup_logging
from datanet.node.config import Config


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, libp2p = logging.getLogger(), logging.getLogger("libp2p")
    multiaddr = logging.getLogger("multiaddr")
    saved = (root.handlers[:], root.level, libp2p.level, libp2p.propagate, multiaddr.level)
    try:
        yield
    finally:
        root.handlers, root.level = saved[0], saved[1]
        libp2p.setLevel(saved[2])
        libp2p.propagate = saved[3]
        multiaddr.setLevel(saved[4])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def make_handler(clock: Clock) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter('{"msg": "%(message)s", "level": "%(levelname)s"}'))
    handler.addFilter(RepeatFilter(handler, max_repeats=3, window=10, clock=clock))
    logger = logging.getLogger("test.repeats")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_a_repeated_template_is_dropped_then_summarised_once() -> None:
    clock = Clock()
    logger, stream = make_handler(clock)
    for n in range(20):
        logger.info("stream %d entered CLOSE_BOTH", n)  # same template, other arguments
    logger.warning("something else")
    assert [d["msg"] for d in lines(stream)] == [
        "stream 0 entered CLOSE_BOTH",
        "stream 1 entered CLOSE_BOTH",
        "stream 2 entered CLOSE_BOTH",
        "something else",
    ]
    clock.now = 11  # the window is over: the next line of any template writes the summary
    logger.debug("later")
    got = [(d["msg"], d["level"]) for d in lines(stream)][4:]
    assert got == [("stream %d entered CLOSE_BOTH … repeated 17 times", "INFO"), ("later", "DEBUG")]
    for n in range(5):  # a new window lets the template through again
        logger.info("stream %d entered CLOSE_BOTH", n)
    assert len(lines(stream)) == 6 + 3


def test_flush_writes_the_pending_summaries() -> None:
    clock = Clock()
    logger, stream = make_handler(clock)
    for _ in range(5):
        logger.error("refused")
    (repeat,) = [f for f in logger.handlers[0].filters if isinstance(f, RepeatFilter)]
    repeat.flush()
    assert [d["msg"] for d in lines(stream)][-1] == "refused … repeated 2 times"


def test_tracked_templates_are_bounded() -> None:
    clock = Clock()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    repeat = RepeatFilter(handler, max_repeats=1, window=10, max_templates=4, clock=clock)
    handler.addFilter(repeat)
    logger = logging.getLogger("test.repeats.bounded")
    logger.handlers, logger.propagate = [handler], False
    for n in range(100):
        logger.warning(f"attacker line {n}")  # distinct templates on purpose
    assert len(repeat._seen) <= 4


def test_setup_logging_summarises_repeats(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("info", "json", stream)
    for n in range(LOG_MAX_REPEATS * 3):
        logging.getLogger("datanet.p2p").info("peer %s refused: no_hello", n)
    assert len(lines(stream)) == LOG_MAX_REPEATS


def test_libp2p_level_is_independent_of_log_level(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("debug", "json", stream, libp2p_level="warning")
    logging.getLogger("libp2p.gap6.swarm").info("libp2p chatter")
    logging.getLogger("libp2p.gap6.swarm").warning("libp2p warning")
    logging.getLogger("multiaddr.transforms").debug("[DEBUG] bytes_to_string: proto=ip4")
    logging.getLogger("datanet.x").debug("ours")
    assert [d["msg"] for d in lines(stream)] == ["libp2p warning", "ours"]

    stream = io.StringIO()
    setup_logging("error", "json", stream, libp2p_level="debug")
    logging.getLogger("libp2p.gap6.transport").debug("libp2p detail")
    logging.getLogger("datanet.x").warning("hidden")
    assert [d["msg"] for d in lines(stream)] == ["libp2p detail"]


def test_libp2p_level_setting_defaults_to_warning() -> None:
    config = Config.defaults()
    assert config.log.libp2p_level == "warning"
    assert config.with_value("log.libp2p_level", "debug").log.libp2p_level == "debug"
