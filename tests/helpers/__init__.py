"""Test harness: real node processes, paho-mqtt clients with waits, a raw-socket client.

- ``NodeProcess`` (``nodes.py``): ``python -m mqttmesh foreground`` with a temp config, free
  ports, readiness by pid file + TCP connect, logs kept for failure reports.
- ``Client`` (``clients.py``): paho-mqtt (3.1.1 or 5.0, tcp / tls / websockets) whose
  operations block on the broker's answer with a timeout; received messages in a queue.
- ``RawClient`` (``raw.py``): send hex / bytes, read until the server closes, decode what came
  back with ``mqttmesh.protocol``'s client-role Decoder.
- ``make_tls_files`` (``tls.py``): throwaway CA + server certificate via the openssl CLI.
"""

from .clients import Client, ConnectFailed, Received
from .nodes import NodeProcess, NodeStartError, free_port, live_nodes
from .raw import RawClient, RawResult
from .tls import TlsFiles, make_tls_files

__all__ = [
    "NodeProcess", "NodeStartError", "free_port", "live_nodes",
    "Client", "ConnectFailed", "Received",
    "RawClient", "RawResult",
    "TlsFiles", "make_tls_files",
]
