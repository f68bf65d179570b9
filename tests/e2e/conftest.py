"""E2E fixtures: one node process per module (``node``), paho clients per test (``mqtt``).

Tests in a module share the node, so every test uses its own client ids and topics
(``topic`` fixture, ``unique()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Client, NodeProcess
from tests.helpers.clients import unique


@pytest.fixture(scope="module")
def node(module_node_factory) -> NodeProcess:
    """A standalone node with only the TCP listener, shared by the module."""
    return module_node_factory()


class Clients:
    """``mqtt(...)`` connects a new Client to the module's node; all closed at teardown."""

    def __init__(self, node: NodeProcess, version: int) -> None:
        self.node = node
        self.version = version
        self.made: list[Client] = []

    def new(self, **kwargs: Any) -> Client:
        kwargs.setdefault("version", self.version)
        port = kwargs.pop("port", None) or self.node.port
        client = Client(port, **kwargs)
        self.made.append(client)
        return client

    def __call__(self, **kwargs: Any) -> Client:
        return self.new(**kwargs).connect()

    def close(self) -> None:
        for client in self.made:
            try:
                client.close()
            except Exception:
                pass


@pytest.fixture
def mqtt(node: NodeProcess, version: int) -> Iterator[Clients]:
    clients = Clients(node, version)
    yield clients
    clients.close()


@pytest.fixture
def topic() -> str:
    """A unique topic prefix for one test."""
    return unique("e2e")
