"""mqttmesh.cli: the `mqttmesh` command (foreground, start, stop, ping, ctl)."""

from mqttmesh.cli.main import main, make_loader

__all__ = ["main", "make_loader"]
