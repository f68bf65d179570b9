"""`etcd` strategy: register under a lease, discover by prefix, lock with a txn (etcd v3).

Theory of operation. Each node puts `<prefix>/<cluster>/nodes/<node>` (value: JSON with
the node and cluster names) under a lease of `node_ttl` seconds. `register()` is called
every discovery round: the first call grants the lease and puts the key, later calls send a
keep-alive; a keep-alive that finds the lease gone (etcd restarted, node paused past the
TTL) grants a new one and puts the key again. So a node that dies vanishes after `node_ttl`,
and one that was cut off from etcd re-registers on its own. `discover()` reads every key
under `<prefix>/`: nodes registered for another cluster name are dropped, and said so.
The join lock is `<prefix>/<cluster>/lock`, created only if absent (txn on
create_revision = 0) under our lease, so a node that dies holding it frees it within
`node_ttl`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from typing import Any

from mqttmesh.discovery.base import BaseStrategy, EtcdConfig, RejectionLog
from mqttmesh.discovery.etcd_client import EtcdClient, EtcdRequestError, b64, prefix_end, unb64
from mqttmesh.errors import DiscoveryError

__all__ = ["EtcdStrategy"]

log = logging.getLogger("mqttmesh.discovery.etcd")

LOCK_WAIT = 10.0        # how long lock() waits for another node's join to finish
LOCK_POLL = 0.25


class EtcdStrategy(BaseStrategy):
    """Registration, discovery and the join lock in etcd (`cluster.etcd.*`)."""

    name = "etcd"

    def __init__(self, config: EtcdConfig, node_name: str, cluster_name: str) -> None:
        self._config = config
        self.node_name = node_name
        self._cluster_name = cluster_name
        self._client = EtcdClient(config.servers, config.tls, config.timeout)
        self._root = config.prefix.rstrip("/") + "/"
        self._key = f"{self._root}{cluster_name}/nodes/{node_name}"
        self._lock_key = f"{self._root}{cluster_name}/lock"
        self._lease: str | None = None
        self._rejections = RejectionLog(log)
        self.lock_wait = LOCK_WAIT

    @property
    def key(self) -> str:
        """This node's registration key."""
        return self._key

    async def register(self) -> None:
        if self._lease is not None:
            try:
                result = await self._client.call("lease/keepalive", {"ID": self._lease})
            except EtcdRequestError:
                result = {}
            if int(result.get("TTL", 0)) > 0:
                return
            log.warning("etcd lease of %s expired; registering again", self.node_name)
            self._lease = None
        ttl = max(1, math.ceil(self._config.node_ttl))
        grant = await self._client.call("lease/grant", {"TTL": ttl})
        lease = str(grant["ID"])
        value = json.dumps({"node": self.node_name, "cluster": self._cluster_name})
        await self._client.call("kv/put", {"key": b64(self._key), "value": b64(value), "lease": lease})
        self._lease = lease
        log.info("registered %s in etcd (%s) as %s, ttl %ss", self.node_name, self._client.servers, self._key, ttl)

    async def discover(self) -> list[str]:
        root = self._root.encode()
        result = await self._client.call("kv/range", {"key": b64(root), "range_end": b64(prefix_end(root))})
        names: list[str] = []
        for item in result.get("kvs", []):
            key = unb64(item["key"]).decode(errors="replace")
            cluster, sep, node = key[len(self._root):].partition("/nodes/")
            if not sep or not node or "/" in cluster:
                continue
            value = _node_value(item.get("value", ""))
            if cluster != self._cluster_name:
                self._rejections.reject(node, f"it registered in etcd for cluster {cluster!r}, this node is in cluster {self._cluster_name!r}")
                continue
            if value.get("cluster", cluster) != self._cluster_name or value.get("node", node) != node:
                self._rejections.reject(node, f"its etcd record {value} does not match key {key}")
                continue
            self._rejections.accept(node)
            names.append(node)
        return sorted(names)

    async def lock(self) -> bool:
        if self._lease is None:
            await self.register()
        deadline = time.monotonic() + self.lock_wait
        key = b64(self._lock_key)
        mine = b64(self.node_name)
        while True:
            result = await self._client.call("kv/txn", {
                "compare": [{"target": "CREATE", "key": key, "create_revision": "0"}],
                "success": [{"request_put": {"key": key, "value": mine, "lease": self._lease}}],
                "failure": [{"request_range": {"key": key}}],
            })
            if result.get("succeeded"):
                return True
            holder = _lock_holder(result)
            if holder == self.node_name:
                return True
            if time.monotonic() >= deadline:
                log.info("the etcd join lock is held by %s; trying again next round", holder or "another node")
                return False
            await asyncio.sleep(LOCK_POLL)

    async def unlock(self) -> None:
        key = b64(self._lock_key)
        await self._client.call("kv/txn", {
            "compare": [{"target": "VALUE", "key": key, "value": b64(self.node_name)}],
            "success": [{"request_delete_range": {"key": key}}],
            "failure": [],
        })

    async def unregister(self) -> None:
        await self._client.call("kv/deleterange", {"key": b64(self._key)})
        log.info("removed %s from etcd", self._key)
        await self._revoke()

    async def close(self) -> None:
        try:
            await self._revoke()
        except DiscoveryError as exc:
            log.info("could not revoke the etcd lease on close (%s); it expires by itself", exc)

    async def _revoke(self) -> None:
        lease, self._lease = self._lease, None
        if lease is not None:
            try:
                await self._client.call("lease/revoke", {"ID": lease})
            except EtcdRequestError:
                pass    # already expired: the key is gone either way


def _node_value(raw: str) -> dict[str, str]:
    try:
        value = json.loads(unb64(raw)) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _lock_holder(txn: dict[str, Any]) -> str | None:
    for response in txn.get("responses") or []:
        kvs = response.get("response_range", {}).get("kvs", [])
        if kvs:
            return unb64(kvs[0].get("value", "")).decode(errors="replace")
    return None
