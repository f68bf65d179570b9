"""Microbenchmark of the broker hot path (not collected by pytest: run it directly).

    .venv/bin/python tests/broker/bench_micro.py

QoS 1/2 runs include the acknowledgements (PUBACK, PUBREC/PUBREL/PUBCOMP) fed back
through the channels. Times are CPU time of this process (time.process_time), so other load on the machine
distorts them less. Publisher bytes go through Channel.handle_data (decode, route, encode, write) to
CountingOutlets, so the figures include the codec but no sockets or event loop.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

from mqttmesh.broker import Broker, BrokerConfig, Message
from mqttmesh.broker.session import encode_ack
from mqttmesh.protocol import Connect, Subscribe, Subscription, encode, encode_publish
from mqttmesh.testing import CountingOutlet

N = 200_000
BATCH = 100  # publishes per handle_data call (one TCP read)


def connect(broker: Broker, client_id: str, version: int = 4) -> tuple[object, CountingOutlet]:
    out = CountingOutlet()
    ch = broker.open_channel(out, "p", "tcp", 0.0)
    ch.handle_data(encode(Connect(client_id, version, keep_alive=0), version), 0.0)
    return ch, out


def setup(n_subs: int, qos: int, version: int = 4) -> tuple[Broker, object, list[CountingOutlet]]:
    broker = Broker(BrokerConfig(max_inflight=65535, max_mqueue_len=0))
    outs = []
    for i in range(n_subs):
        ch, out = connect(broker, f"s{i}", version)
        ch.handle_data(encode(Subscribe(1, (Subscription("bench/topic", qos),)), version), 0.0)
        outs.append(out)
    pub, _ = connect(broker, "pub", version)
    return broker, pub, outs


def run(label: str, n_subs: int, qos: int = 0, version: int = 4, n: int = N) -> float:
    broker, pub, outs = setup(n_subs, qos, version)
    batch = b"".join(
        encode_publish(b"bench/topic", b"x" * 64, qos, False, False, (i + 1) if qos else None,
                       b"", version)
        for i in range(BATCH)
    )
    pubrels = b"".join(encode_ack(0x62, i + 1) for i in range(BATCH))
    rounds = n // BATCH
    gc.collect()
    t0 = time.process_time()
    for _ in range(rounds):
        pub.handle_data(batch, 0.0)  # type: ignore[attr-defined]
        if qos:
            # the clients acknowledge through their channels (decoded and handled like
            # real acks): the publisher releases its QoS 2 ids, subscribers PUBACK or
            # PUBREC + PUBCOMP, refilling their windows
            if qos == 2:
                pub.handle_data(pubrels, 0.0)  # type: ignore[attr-defined]
            for session in broker.sessions:
                if session.inflight and session.channel is not None:
                    pids = list(session.inflight)
                    if qos == 1:
                        acks = b"".join(encode_ack(0x40, pid) for pid in pids)
                    else:
                        acks = b"".join(encode_ack(0x50, pid) + encode_ack(0x70, pid)
                                        for pid in pids)
                    session.channel.handle_data(acks, 0.0)
    dt = time.process_time() - t0
    msgs = rounds * BATCH
    delivered = broker.counters.messages_sent
    print(f"{label:<44} {msgs / dt:>10,.0f} msg/s in  {delivered / dt:>11,.0f} deliveries/s")
    return msgs / dt


def run_direct(label: str, n_subs: int, n: int = N) -> None:
    broker, _, outs = setup(n_subs, 0)
    gc.collect()
    t0 = time.process_time()
    for _ in range(n):
        broker.publish(Message("bench/topic", b"x" * 64), 0.0)
    dt = time.process_time() - t0
    delivered = sum(o.count for o in outs)
    print(f"{label:<44} {n / dt:>10,.0f} msg/s in  {delivered / dt:>11,.0f} deliveries/s")


def idle_connection_memory(n: int = 2000) -> None:
    broker = Broker(BrokerConfig())
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    keep = []
    for i in range(n):
        keep.append(connect(broker, f"idle{i}"))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"{'idle MQTT 3.1.1 connection (broker objects)':<44} {size / n:>10,.0f} bytes each")


def main() -> None:
    run("QoS 0, 1 subscriber (v3.1.1)", 1)
    run("QoS 0, 1 subscriber (v5)", 1, version=5)
    run("QoS 0, 50 subscribers (v3.1.1)", 50, n=N // 5)
    run("QoS 1 -> QoS 1, 1 subscriber (v3.1.1)", 1, qos=1)
    run("QoS 2 -> QoS 2, 1 subscriber (v5)", 1, qos=2, version=5)
    run("QoS 1 -> QoS 1, 50 subscribers (v3.1.1)", 50, qos=1, n=N // 20)
    run_direct("Broker.publish(Message), 1 subscriber", 1)
    run_direct("Broker.publish(Message), 50 subscribers", 50, n=N // 5)
    idle_connection_memory()


if __name__ == "__main__":
    main()
