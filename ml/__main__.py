"""Lets `python -m ml ...` run the command line in ml.cli.

The process ends with os._exit once the command has returned: every file it wrote is closed and its
worker pool joined by then, and skipping the interpreter's finalisation of torch saves ~0.8 s per run
(~15 % of `ml predict` over 100 devbench files).
"""

import os
import sys

from ml.cli import main

try:
    code = main()
    sys.stdout.flush()
except BrokenPipeError:
    # The reader went away (`... | head`): stop quietly, with the status a SIGPIPE would give.
    code = 128 + 13
sys.stderr.flush()
os._exit(code)
