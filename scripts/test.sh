#!/usr/bin/env bash
# The test command: installs what the tests need, then ruff, mypy and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
scripts/setup.sh --test
. .venv/bin/activate
ruff check src tests bench
mypy
mkdir -p test-artifacts
pytest -q -p no:cacheprovider "$@"
