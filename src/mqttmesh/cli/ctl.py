"""`mqttmesh ctl ...`: admin commands, talking to the node through mgmt.

    mqttmesh ctl [-c FILE] [--node NAME] cluster join NODE [--dry-run]
    mqttmesh ctl cluster leave | force-leave NODE | status [--json] | stats [--json]
    mqttmesh ctl cluster routes verify [--json]
    mqttmesh ctl route explain TOPIC [--json]
    mqttmesh ctl routes list [--json]
    mqttmesh ctl users list [--json] | add USER [--superuser] | passwd USER | delete USER
    mqttmesh ctl acl reload [--json]

User passwords are read from the terminal (asked twice) or, when stdin is not a terminal,
from its first line; never from the command line. User changes apply on every running node.

Output follows the EMQX docs (SPEC §1); errors are one line on stderr with exit code 1
(2 for usage errors).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from mqttmesh.errors import ClusterError

__all__ = ["main", "format_status"]


def format_status(status: dict[str, Any]) -> str:
    """`Cluster status: #{running_nodes => ['a@h1','b@h2'], stopped_nodes => []}`."""
    def names(key: str) -> str:
        return ",".join(f"'{n}'" for n in status.get(key, []))
    line = (f"Cluster status: #{{running_nodes => [{names('running_nodes')}], "
            f"stopped_nodes => [{names('stopped_nodes')}]}}")
    replicants = [n for n in status.get("nodes", []) if n.get("role") == "replicant"]
    if replicants:  # second line only in clusters with replicants: replicant => its core
        pairs = ", ".join(f"'{n['name']}' => '{n.get('core') or 'none'}'" for n in replicants)
        line += f"\nReplicants: #{{{pairs}}}"
    return line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"mqttmesh ctl: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mqttmesh ctl", description="admin commands")
    sub = parser.add_subparsers(dest="group", metavar="GROUP", required=True)
    cluster = sub.add_parser("cluster", help="cluster membership and routes")
    csub = cluster.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = csub.add_parser("join", help="join the cluster of NODE (run on the joining node)")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--dry-run", action="store_true",
                   help="say what this node would lose, change nothing")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("leave", help="this node leaves its cluster")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("force-leave", help="remove NODE from the cluster, on every member")
    p.add_argument("node", metavar="NODE")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("status", help="running and stopped nodes")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("stats", help="this node's cluster counters (links, traffic, relays)")
    p.add_argument("--json", action="store_true")
    p = csub.add_parser("routes", help="route table tools")
    rsub = p.add_subparsers(dest="routes_command", metavar="COMMAND", required=True)
    v = rsub.add_parser("verify", help="compare every node's copy of the route table")
    v.add_argument("--json", action="store_true")
    route = sub.add_parser("route", help="routing of one topic")
    rsub = route.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = rsub.add_parser("explain", help="which filters match TOPIC and where it would go")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--json", action="store_true")
    routes = sub.add_parser("routes", help="this node's copy of the route table")
    rsub = routes.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = rsub.add_parser("list", help="every routed filter and its nodes")
    p.add_argument("--json", action="store_true")
    users = sub.add_parser("users", help="built-in authentication users (every node)")
    usub = users.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = usub.add_parser("list", help="every user")
    p.add_argument("--json", action="store_true")
    p = usub.add_parser("add", help="add USER (password from stdin or prompt)")
    p.add_argument("user", metavar="USER")
    p.add_argument("--superuser", action="store_true", help="bypasses the ACL")
    p.add_argument("--json", action="store_true")
    p = usub.add_parser("passwd", help="change USER's password (from stdin or prompt)")
    p.add_argument("user", metavar="USER")
    p.add_argument("--json", action="store_true")
    for name in ("delete", "del"):
        p = usub.add_parser(name, help="delete USER")
        p.add_argument("user", metavar="USER")
        p.add_argument("--json", action="store_true")
    acl = sub.add_parser("acl", help="authorization (ACL file)")
    asub = acl.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = asub.add_parser("reload", help="reload the ACL file on every node")
    p.add_argument("--json", action="store_true")
    return parser


def _read_password(user: str) -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        first = getpass.getpass(f"Password for {user}: ")
        if getpass.getpass("Again: ") != first:
            raise ClusterError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""
    if not password:
        raise ClusterError("empty password")
    return password


def _access(args: argparse.Namespace, settings: Any) -> int:
    from mqttmesh.mgmt import ops

    if args.group == "acl":
        result = ops.acl_reload(settings)
        if args.json:
            print(json.dumps(result))
        else:
            for row in result.get("rows", []):
                if row.get("reloaded"):
                    print(f"{row['node']}: ACL reloaded ({row.get('rules', 0)} rules)")
                else:
                    print(f"{row['node']}: not reloaded: {row.get('reason')}")
            for node in result.get("unreachable", []):
                print(f"{node}: unreachable")
        failed = [r for r in result.get("rows", []) if not r.get("reloaded")
                  and "no ACL installed" not in str(r.get("reason"))]
        return 1 if failed or result.get("unreachable") else 0
    if args.command == "list":
        rows = ops.users_list(settings)
        if args.json:
            print(json.dumps(rows))
        else:
            for row in rows:
                print(f"{row['user_id']}{'  (superuser)' if row.get('is_superuser') else ''}")
        return 0
    if args.command == "add":
        result = ops.users_add(settings, args.user, _read_password(args.user), args.superuser)
        headline = f"User {args.user} added"
    elif args.command == "passwd":
        result = ops.users_update(settings, args.user, password=_read_password(args.user))
        headline = f"Password of {args.user} changed"
    else:
        result = ops.users_delete(settings, args.user)
        headline = f"User {args.user} deleted"
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{headline} on {', '.join(result.get('nodes', []))}.")
    if result.get("unreachable"):
        print(f"Not applied on (unreachable): {', '.join(result['unreachable'])}")
    return 0


def main(argv: list[str], load: Callable[[str | None], Any]) -> int:
    """Run one ctl command; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    settings = load(None)
    from mqttmesh.mgmt import cluster as ops

    action = _describe(args)
    try:
        if args.group in ("users", "acl"):
            return _access(args, settings)
        if args.group == "route":
            return _explain(ops.route_explain(settings, args.topic), args.json)
        if args.group == "routes":
            return _list(ops.routes_list(settings), args.json)
        if args.command == "join":
            result = ops.join(settings, args.node, args.dry_run)
            if args.dry_run:
                return _dry_run(result, args.json)
            return _done("Join the cluster successfully.", result, args.json)
        if args.command == "leave":
            return _done("Leave the cluster successfully.", ops.leave(settings), args.json)
        if args.command == "force-leave":
            return _done("Remove the node from cluster successfully.",
                         ops.force_leave(settings, args.node), args.json)
        if args.command == "status":
            return _done(None, ops.status(settings), args.json)
        if args.command == "stats":
            stats = ops.cluster_stats(settings)
            if args.json:
                print(json.dumps(stats))
            else:
                for key, value in stats.items():
                    print(f"{key:<20} {value}")
            return 0
        return _verify(ops.routes_verify(settings), args.json)
    except ClusterError as exc:
        print(f"mqttmesh ctl: {action}: {exc}", file=sys.stderr)
        return 1


def _describe(args: argparse.Namespace) -> str:
    if args.group == "route":
        return "route explain failed"
    if args.group == "routes":
        return "routes list failed"
    if args.group in ("users", "acl"):
        return f"{args.group} {args.command} failed"
    return {
        "join": "failed to join the cluster",
        "leave": "failed to leave the cluster",
        "force-leave": "failed to remove the node",
        "status": "cannot get the cluster status",
        "stats": "cannot get the cluster counters",
    }.get(args.command, "routes verify failed")


def _done(headline: str | None, status: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(status))
        return 0
    if headline:
        print(headline)
    print(format_status(status))
    return 0


def _dry_run(report: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(report))
        return 0
    target = report.get("target")
    print(f"Dry run: nothing was changed. Joining {target} would:")
    leave = report.get("would_leave") or []
    if leave:
        print(f"  leave the current cluster (with {', '.join(leave)})")
    print(f"  drop {report.get('routes_dropped', 0)} replicated routes of other nodes "
          f"(re-synced from the new cluster)")
    print(f"  replace {report.get('retained_replaced', 0)} retained messages with the "
          f"cluster's")
    print(f"  keep {report.get('sessions_kept', 0)} local sessions and "
          f"{report.get('own_routes_kept', 0)} local routes")
    members = report.get("target_members") or []
    print(f"{target}'s cluster: {', '.join(members)}")
    return 0


def _verify(result: dict[str, Any], as_json: bool) -> int:
    differences = result.get("differences") or []
    if as_json:
        print(json.dumps(result))
        return 1 if differences else 0
    nodes = result.get("nodes") or []
    if differences:
        print(f"Route tables differ ({len(differences)} differences):")
        for line in differences:
            print(f"  {line}")
    else:
        print(f"Route tables are identical on {len(nodes)} nodes "
              f"({result.get('routes', 0)} routes): {', '.join(nodes)}")
    skipped = result.get("not_checked") or []
    if skipped:
        print(f"Not checked (stopped or unreachable): {', '.join(skipped)}")
    return 1 if differences else 0


def _explain(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result))
        return 0
    filters = result.get("filters") or []
    down = set(result.get("down") or [])
    print(f"Topic {result.get('topic')} matches {len(filters)} "
          f"filter{'s' if len(filters) != 1 else ''}:")
    for topic_filter, nodes in filters:
        shown = ", ".join(f"{n} (down)" if n in down else n for n in nodes)
        print(f"  {topic_filter} -> {shown}")
    targets = []
    if result.get("local"):
        targets.append(f"{result.get('node')} (local)")
    targets += list(result.get("forward_to") or [])
    print(f"A publish on {result.get('node')} goes to: {', '.join(targets) or 'nobody'}")
    return 0


def _list(result: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(result))
        return 0
    down = set(result.get("down") or [])
    for topic_filter, nodes in (result.get("routes") or {}).items():
        shown = ",".join(f"{n} (down)" if n in down else n for n in nodes)
        print(f"{topic_filter} -> {shown}")
    return 0
