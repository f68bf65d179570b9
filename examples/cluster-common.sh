# Shared by static-cluster.sh and etcd-cluster.sh: write node configs, start nodes, wait
# for the cluster, stop everything. Sourced, not run.

MQTTMESH=${MQTTMESH:-mqttmesh}
NODES=${NODES:-3}
COOKIE=${COOKIE:-example-cookie-$(id -u)}
DEADLINE=${DEADLINE:-60}

node_name() { echo "mqttmesh$1@127.0.0.1"; }          # offset $1: link port 437$1 (SPEC §3)

# write_conf I DISCOVERY_BLOCK: node I's config in $WORK/nI.conf
write_conf() {
  local i=$1 discovery=$2
  mkdir -p "$WORK/n$i"
  cat > "$WORK/n$i.conf" <<CONF
node {
  name = "$(node_name "$i")"
  cookie = "$COOKIE"
  data_dir = "$WORK/n$i"
}
cluster {
  name = mqttmesh-example
$discovery
}
listeners.tcp.default.bind = "127.0.0.1:$((1880 + i))"
listeners.ws.default.enable = false
listeners.ssl.default.enable = false
listeners.wss.default.enable = false
dashboard.listeners.http.bind = "127.0.0.1:$((18080 + i))"
CONF
}

start_nodes() {
  local i pids=()
  for i in $(seq 1 "$NODES"); do          # all at once: discovery does the joining
    "$MQTTMESH" start -c "$WORK/n$i.conf" &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i"; done   # not a bare `wait`: etcd is a child too
}

# wait_cluster: poll `ctl cluster status` on every node until each lists every node
wait_cluster() {
  local end=$((SECONDS + DEADLINE)) i j status ok
  while :; do
    ok=1
    for i in $(seq 1 "$NODES"); do
      status=$("$MQTTMESH" -c "$WORK/n$i.conf" ctl cluster status 2>/dev/null || true)
      for j in $(seq 1 "$NODES"); do
        grep -q "$(node_name "$j")" <<<"$status" || ok=0
      done
    done
    [ "$ok" = 1 ] && break
    if [ "$SECONDS" -ge "$end" ]; then
      echo "the cluster did not form within ${DEADLINE}s; logs are in $WORK/n*/log/" >&2
      return 1
    fi
    sleep 1
  done
  for i in $(seq 1 "$NODES"); do
    echo "== $(node_name "$i") (MQTT on 127.0.0.1:$((1880 + i)))"
    "$MQTTMESH" -c "$WORK/n$i.conf" ctl cluster status
  done
}

stop_nodes() {
  local i
  for i in $(seq 1 "$NODES"); do
    [ -f "$WORK/n$i.conf" ] && "$MQTTMESH" stop -c "$WORK/n$i.conf" || true
  done
}
