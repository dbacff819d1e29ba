#!/usr/bin/env bash
# Create .venv (if missing) and install facepipe with its test tools into it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi
echo "setup: installing facepipe and its dependencies into .venv (log: .venv/setup.log)"
if ! { .venv/bin/python -m pip install --upgrade pip \
       && .venv/bin/python -m pip install -e '.[test]'; } > .venv/setup.log 2>&1; then
  tail -n 30 .venv/setup.log
  echo "setup: pip failed; the full log is .venv/setup.log" >&2
  exit 1
fi
