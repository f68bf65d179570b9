"""Fixtures for broker unit tests: a FakeClock, a Broker factory, BrokerClient factory."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from mqttmesh.broker import Broker, BrokerConfig
from mqttmesh.testing import BrokerClient, FakeClock


class RecordingHooks:
    """ClusterHooks that records what the broker tells the cluster."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.forwarded: list[Any] = []

    def route_added(self, topic_filter: str) -> None:
        self.events.append(("added", topic_filter))

    def route_removed(self, topic_filter: str) -> None:
        self.events.append(("removed", topic_filter))

    def forward(self, message: Any) -> None:
        self.forwarded.append(message)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_broker(clock: FakeClock) -> Callable[..., Broker]:
    def make(cluster: Any = None, authenticate: Any = None, **config: Any) -> Broker:
        return Broker(BrokerConfig(**config), cluster=cluster, authenticate=authenticate,
                      rng=random.Random(1))
    return make


@pytest.fixture
def broker(make_broker: Callable[..., Broker]) -> Broker:
    return make_broker()


@pytest.fixture
def client(broker: Broker, clock: FakeClock) -> Callable[..., BrokerClient]:
    """client(version=4) -> a new BrokerClient on the default broker."""
    def make(version: int = 4, on: Broker | None = None) -> BrokerClient:
        return BrokerClient(on or broker, clock, version)
    return make


def tick(broker: Broker, clock: FakeClock, seconds: float) -> None:
    """Advance the clock in 1 s steps, running the broker's timers like runtime does."""
    end = clock.now + seconds
    while clock.now < end:
        clock.advance(min(1.0, end - clock.now))
        broker.tick(clock.now)
