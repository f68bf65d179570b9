#!/usr/bin/env bash
# A three-node mqttmesh cluster on this machine (mqttmesh1..3@127.0.0.1, MQTT on
# 127.0.0.1:1881..1883) formed through etcd: the script starts a one-member etcd on
# loopback (client port ETCD_PORT, default 23790), each node registers itself under
# mqttmesh-example/mqttmesh-example/nodes/<node name> with a 15s lease and joins the
# others it finds there.
#
#   examples/etcd-cluster.sh          start etcd and the nodes, wait, print the cluster status
#   examples/etcd-cluster.sh stop     stop the nodes and etcd
#
# Needs the `etcd` binary (Debian: apt-get install etcd-server). WORK defaults to
# /tmp/mqttmesh-etcd-example.
set -euo pipefail
WORK=${WORK:-/tmp/mqttmesh-etcd-example}
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
. "$(dirname "$0")/cluster-common.sh"

if [ "${1:-start}" = stop ]; then
  stop_nodes
  if [ -f "$WORK/etcd.pid" ]; then
    kill "$(cat "$WORK/etcd.pid")" 2>/dev/null || true
    rm -f "$WORK/etcd.pid"
  fi
  exit 0
fi

command -v etcd >/dev/null || { echo "etcd not found (Debian: apt-get install etcd-server)" >&2; exit 1; }
mkdir -p "$WORK"
url="http://127.0.0.1:$ETCD_PORT"
etcd --name example --data-dir "$WORK/etcd-data" \
  --listen-client-urls "$url" --advertise-client-urls "$url" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "example=http://127.0.0.1:$ETCD_PEER_PORT" \
  >"$WORK/etcd.log" 2>&1 &
echo $! > "$WORK/etcd.pid"
end=$((SECONDS + 30))
until curl -fs "$url/health" 2>/dev/null | grep -q true; do
  [ "$SECONDS" -lt "$end" ] || { echo "etcd did not start; see $WORK/etcd.log" >&2; exit 1; }
  sleep 0.2
done
echo "etcd is up on $url"

for i in $(seq 1 "$NODES"); do
  write_conf "$i" "  discovery_strategy = etcd
  etcd {
    server = \"$url\"
    prefix = mqttmesh-example
    node_ttl = 15s
  }"
done
start_nodes
wait_cluster
echo
echo "Registered nodes (etcd keys under mqttmesh-example/):"
curl -s -X POST "$url/v3/kv/range" -d "{\"key\": \"$(printf %s mqttmesh-example/ | base64)\",
  \"range_end\": \"$(printf %s mqttmesh-example0 | base64)\", \"keys_only\": true}" |
  python3 -c 'import base64, json, sys
for kv in json.load(sys.stdin).get("kvs", []):
    print("  " + base64.b64decode(kv["key"]).decode())'
echo "Stop with: $0 stop"
