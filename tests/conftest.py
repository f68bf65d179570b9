"""Project-wide pytest setup: the test harness on sys.path, node fixtures, failure logs.

Fixtures:
    version         parametrized 4 (MQTT 3.1.1) and 5 (MQTT 5.0)
    node_factory    start NodeProcess'es for one test; killed at teardown
    module_node_factory  the same, shared by a module (one node per module where tests don't
                    interfere: use unique client ids / topics, ``tests.helpers.clients.unique``)
A failing test's report gets a "mqttmesh node logs" section with the tail of every live
node's log.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.helpers import NodeProcess, live_nodes  # noqa: E402


@pytest.fixture(params=[4, 5], ids=["v311", "v5"])
def version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


class NodeFactory:
    """Starts nodes in private directories under one tmp dir; stops them all at the end."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.nodes: list[NodeProcess] = []

    def __call__(self, start: bool = True, **kwargs) -> NodeProcess:
        node = NodeProcess(self.base / f"node{len(self.nodes)}", **kwargs)
        self.nodes.append(node)
        if start:
            node.start()
        return node

    def teardown(self) -> None:
        for node in self.nodes:
            node.stop(timeout=5)


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[NodeFactory]:
    factory = NodeFactory(tmp_path)
    yield factory
    factory.teardown()


@pytest.fixture(scope="module")
def module_node_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeFactory]:
    factory = NodeFactory(tmp_path_factory.mktemp("nodes"))
    yield factory
    factory.teardown()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for node in live_nodes():
            report.sections.append(
                (f"mqttmesh node log: {node.name} {node.ports}", node.log_text(tail=80))
            )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for node in live_nodes():
        node.kill()
