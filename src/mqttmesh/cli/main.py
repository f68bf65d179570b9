"""`mqttmesh` command line: foreground, start, stop, ping, ctl."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mqttmesh.cli import daemon
from mqttmesh.config import Settings, load_settings
from mqttmesh.errors import ConfigError, MqttMeshError
from mqttmesh.logs import log_event, setup_logging

__all__ = ["main", "make_loader"]

log = logging.getLogger("mqttmesh.cli")


def make_loader(config: str | None, node: str | None) -> Callable[[str | None], Settings]:
    """A `load(path) -> Settings` honouring `-c` and `--node` (path None = `-c` or default)."""

    def load(path: str | None = None) -> Settings:
        env: dict[str, str] = dict(os.environ)
        if node:
            env["MQTTMESH_NODE__NAME"] = node  # beats every other source
        return load_settings(path if path is not None else config, env)

    return load


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS,
                        help="HOCON config file (default: etc/mqttmesh.conf if it exists)")
    common.add_argument("--node", metavar="NAME", default=argparse.SUPPRESS, help="node name, overrides node.name")
    parser = argparse.ArgumentParser(
        prog="mqttmesh", description="mqttmesh: a clustered MQTT broker", parents=[common])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sub.add_parser("foreground", parents=[common], help="run a node in the foreground")
    p = sub.add_parser("start", parents=[common], help="start the node as a daemon")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the node to listen (default 60)")
    p = sub.add_parser("stop", parents=[common], help="stop the daemon")
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the node to exit (default 60)")
    sub.add_parser("ping", parents=[common], help="check the daemon is up")
    sub.add_parser("ctl", parents=[common], help="admin commands: mqttmesh ctl cluster ...")
    return parser


def _split_ctl(argv: list[str]) -> tuple[list[str], list[str]] | None:
    """For `... ctl REST`: (global options, REST with -c/--node taken out and added to them)."""
    if "ctl" not in argv:
        return None
    index = argv.index("ctl")
    head, rest = argv[:index], argv[index + 1:]
    kept: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in ("-c", "--config", "--node") and i + 1 < len(rest):
            head += [arg, rest[i + 1]]
            i += 2
            continue
        if arg.startswith(("--config=", "--node=")):
            head.append(arg)
        else:
            kept.append(arg)
        i += 1
    return head, kept


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mqttmesh` and `python -m mqttmesh`. Returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    ctl_split = _split_ctl(args_list)
    parser = _parser()
    if ctl_split is not None:
        head, ctl_argv = ctl_split
        args = parser.parse_args(head + ["ctl"])
    else:
        args = parser.parse_args(args_list)
        ctl_argv = []
    config: str | None = getattr(args, "config", None)
    node: str | None = getattr(args, "node", None)
    load = make_loader(config, node)
    if args.command == "ctl":
        return _ctl(ctl_argv, load)
    try:
        settings = load(None)
    except ConfigError as exc:
        print(f"mqttmesh: {exc}", file=sys.stderr)
        return 1
    if args.command == "foreground":
        return foreground(settings)
    if args.command == "start":
        return daemon.start(settings, node, args.timeout)
    if args.command == "stop":
        return daemon.stop(settings, args.timeout)
    return daemon.ping(settings)


def _ctl(argv: list[str], load: Callable[[str | None], Settings]) -> int:
    try:
        ctl = importlib.import_module("mqttmesh.cli.ctl")
    except ModuleNotFoundError as exc:
        if exc.name != "mqttmesh.cli.ctl":
            raise
        print("ctl: not available yet", file=sys.stderr)
        return 2
    try:
        return int(ctl.main(argv, load))
    except ConfigError as exc:
        print(f"mqttmesh: {exc}", file=sys.stderr)
        return 1


def foreground(settings: Settings) -> int:
    """Run a node until SIGTERM/SIGINT; 0 on graceful stop."""
    setup_logging(settings)
    for warning in settings.warnings:
        log_event(log, "warning", warning)
    try:
        from mqttmesh.runtime import Node  # type: ignore[attr-defined]
        from mqttmesh.runtime.cluster_service import ClusterService
    except ImportError as exc:
        print(f"mqttmesh: the runtime is not available: {exc}", file=sys.stderr)
        return 1
    if Node.cluster_factory is None:
        Node.cluster_factory = ClusterService  # every node serves its cluster ports (SPEC §3)
    if Node.http_app_factory is None:
        from mqttmesh.api import make_app

        Node.http_app_factory = make_app  # HTTP API + dashboard on dashboard.listeners.http
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_run(Node, settings))
    except KeyboardInterrupt:  # Ctrl-C before the signal handlers were installed
        return 130
    except (OSError, MqttMeshError) as exc:
        # typically a listener port already in use, or a certificate that cannot be loaded
        log_event(log, "error", "node failed to start", node=settings.node.name, error=str(exc))
        print(f"mqttmesh: cannot start node {settings.node.name}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        log.exception("node crashed", extra={"kv": {"node": settings.node.name}})
        print(f"mqttmesh: node {settings.node.name} crashed: {exc}", file=sys.stderr)
        return 1
    log_event(log, "info", "node stopped", node=settings.node.name)
    return 0


async def _run(node_class: Any, settings: Settings) -> None:
    node = node_class(settings)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    stop_calls: list[asyncio.Future[Any]] = []
    signals_seen: list[str] = []

    def on_signal(name: str) -> None:
        signals_seen.append(name)
        if len(signals_seen) > 1:
            log_event(log, "warning", "second stop signal: cancelling the node", signal=name)
            if main_task is not None:
                main_task.cancel()
            return
        log_event(log, "info", "stopping node", node=settings.node.name, signal=name)
        result = node.stop()
        if inspect.isawaitable(result):
            stop_calls.append(asyncio.ensure_future(result))

    installed: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            pass
    try:
        await node.run()
        if stop_calls:  # node.stop() returned an awaitable: let it finish, briefly
            await asyncio.wait(stop_calls, timeout=5.0)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
