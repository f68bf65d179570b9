"""DiscoveryLoop against a scripted in-memory strategy (a fake, not a mock)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mqttmesh.discovery import BaseStrategy, DiscoveryLoop
from mqttmesh.errors import DiscoveryError

from .conftest import eventually, run


class ScriptedStrategy(BaseStrategy):
    """Answers from `answers` in turn (an exception is raised); records every call."""

    name = "scripted"

    def __init__(self, answers: list[list[str] | Exception], node_name: str = "me@127.0.0.1") -> None:
        self.node_name = node_name
        self.answers = answers
        self.calls: list[str] = []
        self.lock_granted = True

    async def register(self) -> None:
        self.calls.append("register")

    async def discover(self) -> list[str]:
        self.calls.append("discover")
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return list(answer)

    async def lock(self) -> bool:
        self.calls.append("lock")
        return self.lock_granted

    async def unlock(self) -> None:
        self.calls.append("unlock")

    async def unregister(self) -> None:
        self.calls.append("unregister")

    async def close(self) -> None:
        self.calls.append("close")


def test_candidates_exclude_self_and_are_offered_under_the_lock() -> None:
    async def body() -> None:
        strategy = ScriptedStrategy([["b@h", "me@127.0.0.1", "a@h", "a@h"]])
        offered: list[list[str]] = []

        async def on_candidates(names: list[str]) -> None:
            assert strategy.calls[-1] == "lock"
            offered.append(names)

        loop = DiscoveryLoop(strategy, on_candidates, interval=0.01)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            await eventually(lambda: _ready(len(offered) >= 2))
            loop.stop()
        assert offered[0] == ["a@h", "b@h"]
        assert strategy.calls[:5] == ["register", "discover", "lock", "unlock", "register"]
        assert strategy.calls[-1] == "close"
        assert "unregister" not in strategy.calls
    run(body())


def test_errors_back_off_then_recover(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mqttmesh.discovery")

    async def body() -> None:
        down = DiscoveryError("etcd unreachable (http://127.0.0.1:1: connection refused)")
        strategy = ScriptedStrategy([down, down, down, ["a@h"]])
        offered: list[list[str]] = []

        async def on_candidates(names: list[str]) -> None:
            offered.append(names)

        loop = DiscoveryLoop(strategy, on_candidates, interval=0.01, max_backoff=0.03)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            await eventually(lambda: _ready(offered))
            stats = loop.statistics()
            loop.stop()
        assert stats.failures == 3 and stats.consecutive_failures == 0
        assert stats.candidates == ("a@h",) and stats.last_error is None
    run(body())
    messages = [r.getMessage() for r in caplog.records]
    assert "etcd unreachable (http://127.0.0.1:1: connection refused), retrying in 0.01s" in messages
    assert "etcd unreachable (http://127.0.0.1:1: connection refused), retrying in 0.02s" in messages
    assert "etcd unreachable (http://127.0.0.1:1: connection refused), retrying in 0.03s" in messages
    assert "scripted discovery works again after 3 failed attempts" in messages
    assert "discovered nodes: a@h" in messages


def test_nothing_found_offers_nothing_and_a_failing_callback_does_not_stop_the_loop(
        caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        strategy = ScriptedStrategy([[], ["a@h"]])
        calls = 0

        async def on_candidates(names: list[str]) -> None:
            nonlocal calls
            calls += 1
            raise RuntimeError("join refused")

        loop = DiscoveryLoop(strategy, on_candidates, interval=0.01)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            await eventually(lambda: _ready(calls >= 2))
            loop.stop()
        assert strategy.calls[:2] == ["register", "discover"] and strategy.calls[2] == "register"
        assert strategy.calls.count("lock") == strategy.calls.count("unlock")
    run(body())
    assert any("handling discovered nodes a@h failed" in r.getMessage() for r in caplog.records)


def test_refused_lock_skips_the_callback() -> None:
    async def body() -> None:
        strategy = ScriptedStrategy([["a@h"]])
        strategy.lock_granted = False
        offered: list[list[str]] = []

        async def on_candidates(names: list[str]) -> None:
            offered.append(names)

        loop = DiscoveryLoop(strategy, on_candidates, interval=0.01)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            await eventually(lambda: _ready(strategy.calls.count("lock") >= 2))
            loop.stop()
        assert offered == [] and "unlock" not in strategy.calls
    run(body())


def test_leave_unregisters_and_closes() -> None:
    async def body() -> None:
        strategy = ScriptedStrategy([["a@h"]])

        async def on_candidates(names: list[str]) -> None:
            return None

        loop = DiscoveryLoop(strategy, on_candidates, interval=0.01)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(loop.run())
            await loop.wait_round()
            await loop.leave()
        assert strategy.calls[-2:] == ["unregister", "close"]
        # a loop that never ran still unregisters
        idle = ScriptedStrategy([[]])
        await DiscoveryLoop(idle, on_candidates).leave()
        assert idle.calls == ["unregister", "close"]
    run(body())


async def _ready(value: object) -> object:
    return value
