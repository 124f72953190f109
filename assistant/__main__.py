"""Allows `python -m assistant`, used by the systemd units and scripts that run without the console script."""

from assistant.cli import main

raise SystemExit(main())
