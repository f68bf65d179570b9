#!/usr/bin/env bash
# Two core nodes and three replicants on this machine (node names mqttmesh1..5@127.0.0.1,
# MQTT on 127.0.0.1:1881..1885). The cores find each other by static discovery; each
# replicant has the cores as its seeds, attaches to the core serving the fewest replicants
# and links to nothing else (docs/scaling.md). No `ctl cluster join` anywhere.
#
#   examples/replicant-cluster.sh        start the nodes, wait for the cluster, print status
#   examples/replicant-cluster.sh stop   stop them
#
# WORK (default /tmp/mqttmesh-replicant-example) holds configs, data and logs; MQTTMESH is the
# command to run (default: mqttmesh on PATH, e.g. from `. .venv/bin/activate`).
set -euo pipefail
WORK=${WORK:-/tmp/mqttmesh-replicant-example}
NODES=5
CORES=2
. "$(dirname "$0")/cluster-common.sh"

if [ "${1:-start}" = stop ]; then
  stop_nodes
  exit 0
fi

seeds=$(for i in $(seq 1 "$CORES"); do printf '"%s", ' "$(node_name "$i")"; done)
for i in $(seq 1 "$NODES"); do
  write_conf "$i" "  discovery_strategy = static
  static.seeds = [${seeds%, }]"
  if [ "$i" -gt "$CORES" ]; then
    echo "node.role = replicant" >> "$WORK/n$i.conf"
  fi
done
start_nodes
wait_cluster
echo
echo "Try: mosquitto_sub -p 1884 -t demo/# & mosquitto_pub -p 1885 -t demo/x -m hello"
echo "     (replicant to replicant, relayed by the cores)"
echo "Stop with: $0 stop"
