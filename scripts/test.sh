#!/usr/bin/env bash
# The test command of the README: installs whatever is missing (system packages,
# .venv, the Caffe build; seconds when all is there), then runs the test suite
# against the real Caffe build.  Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/install.sh"
cd "$ROOT"
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests "$@"
