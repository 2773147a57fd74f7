"""Lets `python -m ml ...` run the command line in ml.cli."""

from ml.cli import main

raise SystemExit(main())
