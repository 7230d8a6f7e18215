"""``python -m trackdiffusion``: the same command line as the ``trackdiffusion`` console script."""

import sys

from .cli import main

sys.exit(main())
