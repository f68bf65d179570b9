"""Prometheus text exposition (format 0.0.4) of the cluster's stats and metrics, per node."""

from __future__ import annotations

from typing import Any

__all__ = ["render"]

# (metric name, type, help, row key)
_STATS = [
    ("mqttmesh_connections_count", "gauge", "connected clients", "connections.count"),
    ("mqttmesh_channels_count", "gauge", "open network connections", "channels.count"),
    ("mqttmesh_sessions_count", "gauge", "sessions held", "sessions.count"),
    ("mqttmesh_subscriptions_count", "gauge", "subscriptions", "subscriptions.count"),
    ("mqttmesh_subscriptions_shared_count", "gauge", "shared subscriptions",
     "subscriptions.shared.count"),
    ("mqttmesh_routes_count", "gauge", "filters with a local subscriber", "routes.count"),
    ("mqttmesh_cluster_routes_count", "gauge", "routes in the replicated table",
     "cluster.routes.count"),
    ("mqttmesh_retained_count", "gauge", "retained messages", "retained.count"),
]
_METRICS = [
    ("mqttmesh_messages_received", "counter", "PUBLISH packets accepted from clients",
     "messages.received"),
    ("mqttmesh_messages_sent", "counter", "PUBLISH packets written to clients", "messages.sent"),
    ("mqttmesh_messages_dropped", "counter", "messages discarded", "messages.dropped"),
    *((f"mqttmesh_messages_qos{q}_{d}", "counter", f"QoS {q} PUBLISH packets {text}",
       f"messages.qos{q}.{d}")
      for d, text in (("received", "accepted from clients"), ("sent", "written to clients"))
      for q in (0, 1, 2)),
    ("mqttmesh_messages_forward", "counter", "messages forwarded to other nodes",
     "messages.forward"),
    ("mqttmesh_messages_from_peers", "counter", "messages dispatched for other nodes",
     "messages.from_peers"),
    ("mqttmesh_bytes_received", "counter", "MQTT bytes read", "bytes.received"),
    ("mqttmesh_bytes_sent", "counter", "MQTT bytes written", "bytes.sent"),
    ("mqttmesh_cluster_forwards_unacked", "gauge", "QoS 1/2 forwards awaiting an ack",
     "cluster.forwards_unacked"),
]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(cluster: str, stats: list[dict[str, Any]], metrics: list[dict[str, Any]],
           unreachable: list[str]) -> str:
    """The text page: one sample per node per metric, plus link health and reachability."""
    lines: list[str] = []
    for rows, table in ((stats, _STATS), (metrics, _METRICS)):
        for name, kind, text, key in table:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")
            for row in sorted(rows, key=lambda r: r["node"]):
                if key in row:
                    lines.append(f'{name}{{node="{_label(row["node"])}",cluster="{_label(cluster)}"}} '
                                 f"{row[key]}")
    lines.append("# HELP mqttmesh_cluster_link_up 1 if the node's link to the peer is up")
    lines.append("# TYPE mqttmesh_cluster_link_up gauge")
    for row in sorted(metrics, key=lambda r: r["node"]):
        for peer, up in sorted((row.get("cluster.link_up") or {}).items()):
            lines.append(f'mqttmesh_cluster_link_up{{node="{_label(row["node"])}",'
                         f'peer="{_label(peer)}"}} {int(up)}')
    lines.append("# HELP mqttmesh_node_up 1 if the node answered this scrape")
    lines.append("# TYPE mqttmesh_node_up gauge")
    for row in sorted(stats, key=lambda r: r["node"]):
        lines.append(f'mqttmesh_node_up{{node="{_label(row["node"])}"}} 1')
    for node in sorted(unreachable):
        lines.append(f'mqttmesh_node_up{{node="{_label(node)}"}} 0')
    return "\n".join(lines) + "\n"
