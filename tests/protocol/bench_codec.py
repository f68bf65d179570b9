"""Micro-benchmark of the codec hot path (CPU time, best of 5): `python tests/protocol/bench_codec.py`."""

import time
from mqttmesh.protocol import Decoder, encode, Connect, Publish, encode_publish, Properties, encode_properties
N = 100_000
pub = encode(Publish("sensors/room1/temp", b"x" * 16), 4)
stream = b"".join([pub] * N)
best = 1e9
for _ in range(5):
    d = Decoder(protocol_version=4)
    t = time.process_time(); out = d.feed(stream); dt = time.process_time() - t
    best = min(best, dt); assert len(out) == N
print(f"decode v4 qos0: {best/N*1e9:.0f} ns/packet, {N/best:,.0f} packets/s")
pub5 = encode(Publish("sensors/room1/temp", b"x" * 16), 5)
stream = b"".join([pub5] * N)
best = 1e9
for _ in range(5):
    d = Decoder(protocol_version=5)
    t = time.process_time(); out = d.feed(stream); dt = time.process_time() - t
    best = min(best, dt)
print(f"decode v5 qos0: {best/N*1e9:.0f} ns/packet, {N/best:,.0f} packets/s")
pub1 = encode(Publish("sensors/room1/temp", b"x" * 16, 1, packet_id=3), 4)
stream = b"".join([pub1] * N)
best = 1e9
for _ in range(5):
    d = Decoder(protocol_version=4)
    t = time.process_time(); out = d.feed(stream); dt = time.process_time() - t
    best = min(best, dt)
print(f"decode v4 qos1: {best/N*1e9:.0f} ns/packet")
best = 1e9
for _ in range(5):
    t = time.process_time()
    for i in range(N):
        encode_publish(b"sensors/room1/temp", b"x"*16, 0, False, False, None, b"", 4)
    dt = time.process_time() - t; best = min(best, dt)
print(f"encode_publish v4 qos0: {best/N*1e9:.0f} ns/packet")
best = 1e9
for _ in range(5):
    t = time.process_time()
    for i in range(N):
        encode_publish(b"sensors/room1/temp", b"x"*16, 1, False, False, 17, b"", 5)
    dt = time.process_time() - t; best = min(best, dt)
print(f"encode_publish v5 qos1: {best/N*1e9:.0f} ns/packet")
# 50k user properties
props = Properties(user_properties=tuple((f"k{i}", "v") for i in range(50_000)))
big = encode(Publish("a", b"", properties=props), 5)
for n in (12_500, 50_000):
    p = Properties(user_properties=props.user_properties[:n])
    b = encode(Publish("a", b"", properties=p), 5)
    d = Decoder(protocol_version=5)
    t = time.process_time(); out = d.feed(b); dt = time.process_time() - t
    print(f"{n} user properties: {dt*1000:.1f} ms")
