"""``python -m news2 INPUT.csv [-o OUTPUT.csv]``: score a CSV of observation sets."""

from news2.cli import main

raise SystemExit(main())
