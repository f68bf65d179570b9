#!/usr/bin/env bash
# A three-node mqttmesh cluster on this machine (pseudo-distributed: one host, node names
# mqttmesh1..3@127.0.0.1, MQTT on 127.0.0.1:1881..1883) formed by static discovery: every
# node has the same seed list and joins the others by itself; no `ctl cluster join`.
#
#   examples/static-cluster.sh          start the nodes, wait for the cluster, print its status
#   examples/static-cluster.sh stop     stop them
#
# WORK (default /tmp/mqttmesh-static-example) holds configs, data and logs; MQTTMESH is the
# command to run (default: mqttmesh on PATH, e.g. from `. .venv/bin/activate`).
set -euo pipefail
WORK=${WORK:-/tmp/mqttmesh-static-example}
. "$(dirname "$0")/cluster-common.sh"

if [ "${1:-start}" = stop ]; then
  stop_nodes
  exit 0
fi

seeds=$(for i in $(seq 1 "$NODES"); do printf '"%s", ' "$(node_name "$i")"; done)
for i in $(seq 1 "$NODES"); do
  write_conf "$i" "  discovery_strategy = static
  static.seeds = [${seeds%, }]"
done
start_nodes
wait_cluster
echo
echo "Try: mosquitto_sub -p 1881 -t demo/# & mosquitto_pub -p 1883 -t demo/x -m hello"
echo "Stop with: $0 stop"
