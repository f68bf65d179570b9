"""Node in-process: start on port 0, pid file contract, stop() future, bind errors."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mqttmesh.config import load_settings
from mqttmesh.runtime import ListenerBindError, Node


def _settings(tmp_path, port=0, extra=""):
    conf = tmp_path / "n.conf"
    conf.write_text(
        f'node.data_dir = "{tmp_path / "data"}"\n'
        f'listeners.tcp.default.bind = "127.0.0.1:{port}"\n'
        "listeners.ssl.default.enable = false\n"
        "listeners.ws.default.enable = false\n"
        "listeners.wss.default.enable = false\n"
        "dashboard.listeners.http.enable = false\n" + extra
    )
    return load_settings(str(conf), {})


def test_run_and_stop(tmp_path):
    node = Node(_settings(tmp_path))

    async def main():
        task = asyncio.create_task(node.run())
        await asyncio.wait_for(node.wait_started(), 5)
        assert (tmp_path / "data" / "mqttmesh.pid").exists()
        port = node.listeners[0].bound_port
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a")
        assert (await reader.readexactly(4)) == b"\x20\x02\x00\x00"
        done = node.stop()
        await asyncio.wait_for(done, 5)
        await asyncio.wait_for(task, 1)
        assert await reader.read() == b""  # the client was closed
        writer.close()

    asyncio.run(main())
    assert not (tmp_path / "data" / "mqttmesh.pid").exists()


def test_stop_before_run_returns_immediately(tmp_path):
    node = Node(_settings(tmp_path))

    async def main():
        node.stop()
        await asyncio.wait_for(node.run(), 5)

    asyncio.run(main())


def test_bind_error_names_listener_and_address(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        node = Node(_settings(tmp_path, port=port))
        with pytest.raises(ListenerBindError) as info:
            asyncio.run(node.run())
        assert str(info.value) == (
            f"listener tcp:default cannot bind 127.0.0.1:{port}: address already in use"
        )
        assert isinstance(info.value, OSError)
        assert not (tmp_path / "data" / "mqttmesh.pid").exists()
    finally:
        holder.close()


def test_access_absent_from_settings_means_open_broker(tmp_path):
    from mqttmesh.runtime.node import build_access

    # default settings: authentication off, no ACL file, no_match = allow -> nothing decides
    # (the user store is still opened, so users can be managed before enabling authentication)
    _, authenticator, authorizer = build_access(_settings(tmp_path))
    assert authenticator is None and authorizer is None


def test_access_built_from_settings(tmp_path):
    from types import SimpleNamespace as NS

    from mqttmesh.access import Authenticator, Authorizer
    from mqttmesh.errors import ConfigError
    from mqttmesh.runtime.node import build_access

    acl = tmp_path / "acl.conf"
    acl.write_text('{allow, all, subscribe, ["a/#"]}.\n{deny, all}.\n')
    settings = NS(
        node=NS(data_dir=str(tmp_path)),
        authentication=NS(enable=True, allow_anonymous=False, password_hash=NS(iterations=10)),
        authorization=NS(no_match="deny", deny_action="disconnect",
                         cache=NS(enable=True, max_size=8),
                         sources=NS(file=NS(enable=True, path=str(acl)))),
    )
    users, authenticator, authorizer = build_access(settings)
    assert isinstance(authenticator, Authenticator)
    assert isinstance(authorizer, Authorizer)
    assert users is not None
    acl.write_text("{allow, all")  # unparsable: a ConfigError naming the key
    with pytest.raises(ConfigError) as info:
        build_access(settings)
    assert info.value.key == "authorization.sources.file.path"


def test_full_session_queue_is_logged_with_the_client(tmp_path, monkeypatch, caplog):
    """max_mqueue_len = 3, an offline persistent session gets 10 QoS 1 messages: 7 are
    dropped (oldest first), and the node says so, naming the client, within one report
    interval (shortened here); nothing is said when nothing overflows."""
    import mqttmesh.runtime.node as node_mod

    monkeypatch.setattr(node_mod, "OVERFLOW_REPORT_INTERVAL", 0.2)
    node = Node(_settings(tmp_path, extra="mqtt.max_mqueue_len = 3\n"))

    async def raw_connect(port, cid: bytes, clean: bool):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        flags = 0x02 if clean else 0x00
        body = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x3c" + len(cid).to_bytes(2, "big") + cid
        writer.write(bytes([0x10, len(body)]) + body)
        assert (await reader.readexactly(4))[:2] == b"\x20\x02"
        return reader, writer

    async def main():
        task = asyncio.create_task(node.run())
        await asyncio.wait_for(node.wait_started(), 5)
        port = node.listeners[0].bound_port
        reader, writer = await raw_connect(port, b"slowpoke", clean=False)
        sub = b"\x00\x01" + b"\x00\x01q" + b"\x01"   # packet id 1, filter "q", QoS 1
        writer.write(bytes([0x82, len(sub)]) + sub)
        await reader.readexactly(5)  # SUBACK
        writer.close()               # offline: its session queues
        await asyncio.sleep(0.1)
        _, pub = await raw_connect(port, b"pub", clean=True)
        for i in range(10):
            body = b"\x00\x01q" + (i + 1).to_bytes(2, "big") + b"m"
            pub.write(bytes([0x32, len(body)]) + body)
        await pub.drain()
        for _ in range(100):
            if any("message queue full" in r.getMessage() for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        await asyncio.wait_for(node.stop(), 5)
        await asyncio.wait_for(task, 1)
        pub.close()

    with caplog.at_level("WARNING"):
        asyncio.run(main())
    reports = [getattr(r, "kv", {}) for r in caplog.records
               if "message queue full" in r.getMessage()]
    assert len(reports) == 1, caplog.text
    assert reports[0]["clients"] == "slowpoke:7" and reports[0]["limit"] == 3
    assert reports[0]["dropped"] == 7 and reports[0]["sessions"] == 1
