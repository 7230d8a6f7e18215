"""``python -m trackdiffusion.nodes.runner WORKFLOW.json ...``: the same as ``trackdiffusion run``."""

import sys

from .cli import main

sys.exit(main())
