#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
# The machine is shared; one thread per process avoids 100x slowdowns from oversubscription.
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec .venv/bin/python -m pytest -q "$@"
