"""`python -m mqttmesh.runtime.cluster_main ARGS`: `mqttmesh ARGS` with the cluster plugged in.

A thin integration used until ``Node`` constructs its ``ClusterService`` itself: it sets
``Node.cluster_factory`` (the plug-in point Node offers) and runs the usual CLI. The
integration tests in ``tests/cluster`` start nodes this way.
"""

from __future__ import annotations

import sys

from mqttmesh.runtime.cluster_service import ClusterService
from mqttmesh.runtime.node import Node

__all__ = ["install", "main"]


def install() -> None:
    """Make every Node built from now on run a ClusterService."""
    if Node.cluster_factory is None:
        Node.cluster_factory = ClusterService


def main(argv: list[str] | None = None) -> int:
    from mqttmesh.cli.main import main as cli_main

    install()
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
