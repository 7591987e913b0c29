#!/usr/bin/env bash
# Set up and run callvault: SIP, RTP, HTTP and finishing in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/callvault "${@:-serve}"
