"""`manual` (no discovery) and `static` (a fixed seed list) strategies."""

from __future__ import annotations

from mqttmesh.discovery.base import BaseStrategy

__all__ = ["ManualStrategy", "StaticStrategy"]


class ManualStrategy(BaseStrategy):
    """Finds nothing: nodes join with `ctl cluster join`."""

    name = "manual"

    def __init__(self, node_name: str = "") -> None:
        self.node_name = node_name


class StaticStrategy(BaseStrategy):
    """The configured seeds (`cluster.static.seeds`), this node excluded.

    A seed that is down is still returned: whether it answers is for the join to find out,
    and it is tried again next round, so a node whose seeds are all down starts standalone
    and joins when one appears.
    """

    name = "static"

    def __init__(self, seeds: tuple[str, ...] | list[str], node_name: str) -> None:
        self.node_name = node_name
        self._seeds = [seed for seed in dict.fromkeys(seeds) if seed != node_name]

    async def discover(self) -> list[str]:
        return list(self._seeds)
