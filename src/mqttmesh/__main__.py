"""`python -m mqttmesh` entry point."""

from mqttmesh.cli import main

raise SystemExit(main())
