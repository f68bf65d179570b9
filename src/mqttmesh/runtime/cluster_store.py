"""What a ClusterService keeps in ``node.data_dir`` and the ports it binds.

* ``node_name``: the name the data dir belongs to (a node's name cannot change: starting
  another name on the same data dir is refused, saying so).
* ``cluster.json``: the membership view (``Membership.to_json``), written atomically on every
  change, read at start so a restarted node rejoins its cluster by itself.
"""

from __future__ import annotations

import logging
import os

from mqttmesh.cluster import Membership
from mqttmesh.errors import ClusterError
from mqttmesh.logs import log_event

__all__ = ["check_identity", "write_atomic", "load_view", "save_view",
           "IDENTITY_FILE", "VIEW_FILE"]

log = logging.getLogger("mqttmesh.cluster")

IDENTITY_FILE = "node_name"
VIEW_FILE = "cluster.json"


def check_identity(data_dir: str, name: str) -> None:
    """Record ``name`` in ``data_dir`` or check it is the name recorded there.

    Raises:
        ClusterError: the data dir belongs to a node of another name.
    """
    path = os.path.join(data_dir, IDENTITY_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            recorded = fh.read().strip()
    except FileNotFoundError:
        os.makedirs(data_dir, exist_ok=True)
        write_atomic(path, name + "\n")
        return
    if recorded and recorded != name:
        raise ClusterError(
            f"data dir {data_dir} belongs to node {recorded}, not {name}: a node's name "
            f"cannot change; start it as {recorded} or give {name} another node.data_dir")


def write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def load_view(data_dir: str, name: str, role: str) -> Membership:
    """The persisted view, or a standalone one.

    Raises:
        ClusterError: the file is corrupt or belongs to another node.
    """
    path = os.path.join(data_dir, VIEW_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        return Membership(name, role)
    return Membership.from_json(text, name, role)


def save_view(data_dir: str, membership: Membership) -> None:
    """Persist the view (errors are logged: the node keeps running on its memory)."""
    try:
        write_atomic(os.path.join(data_dir, VIEW_FILE), membership.to_json())
    except OSError as exc:
        log_event(log, "error", "cannot save the cluster view", path=data_dir, error=str(exc))
