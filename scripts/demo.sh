#!/usr/bin/env bash
# The demo command (README): create the virtualenv if needed, install paperalerts, run the demo.
# Extra arguments go to `paperalerts demo`, e.g. `bash scripts/demo.sh --serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c "import paperalerts" 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e .
fi
exec .venv/bin/paperalerts demo "$@"
