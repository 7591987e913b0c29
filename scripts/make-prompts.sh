#!/usr/bin/env bash
# Regenerates the shipped announcement prompts (SPEC 3: nl, de, en; start and stop)
# with espeak-ng, then converts each to 8 kHz mono 16-bit WAV with callvault's own
# upload converter (callvault.announcements.upload), so a shipped prompt passes
# the same checks as a tenant's upload. The WAVs are committed: neither espeak-ng
# nor this script is needed to build, test or run callvault.
# Usage: scripts/make-prompts.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
out=src/callvault/announcements/prompts
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# language voice kind text
prompts=(
  "nl nl start|Dit gesprek wordt opgenomen."
  "nl nl stop|De opname is gestopt."
  "de de start|Dieses Gespräch wird aufgezeichnet."
  "de de stop|Die Aufzeichnung wurde beendet."
  "en en-gb start|This call is being recorded."
  "en en-gb stop|Recording has stopped."
)
for entry in "${prompts[@]}"; do
  read -r language voice kind <<<"${entry%%|*}"
  text="${entry#*|}"
  mkdir -p "$out/$language"
  # -s: words per minute (a little slower than espeak's 175, for a phone line)
  espeak-ng -v "$voice" -s 150 -w "$tmp/$language-$kind.wav" "$text"
  "$python" - "$tmp/$language-$kind.wav" "$out/$language/$kind.wav" <<'PY'
import sys
from pathlib import Path

from callvault.announcements.upload import convert_upload

source, target = Path(sys.argv[1]), Path(sys.argv[2])
converted = convert_upload(source.read_bytes(), source.name)
target.write_bytes(converted.wav)
print(f"{target}: {converted.duration_ms} ms")
PY
done
