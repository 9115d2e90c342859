"""`python -m diffsim`: the `diffsim` command (diffsim/cli.py)."""

import sys

from .cli import main

sys.exit(main())
