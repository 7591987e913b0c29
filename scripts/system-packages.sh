#!/usr/bin/env bash
# System peers the tests talk to (Debian packages); installed when missing.
# Each one is checked by the tests through tests/peers.py: skipped locally when
# absent, a failure when CI=true. Python peers (Playwright, schemathesis,
# psycopg) come with scripts/setup.sh --test; Playwright drives this Chromium.
set -euo pipefail
need=()
# sip-tester ships sipp and the RFC 4733 pcaps in /usr/share/sip-tester/.
if ! command -v sipp >/dev/null || [ ! -e /usr/share/sip-tester/dtmf_2833_1.pcap ]; then
  need+=(sip-tester)
fi
command -v sox >/dev/null || need+=(sox)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v chromium >/dev/null || need+=(chromium)
# baresip: the phones of the B2BUA tests; rtpengine: the relay the media bench compares to
command -v baresip >/dev/null || need+=(baresip-core)
command -v rtpengine >/dev/null || need+=(rtpengine-daemon)
# kamailio: the SIP dispatcher in front of the cluster tests' nodes (its dispatcher,
# tm, rr and ipops modules are in the main package)
command -v kamailio >/dev/null || need+=(kamailio)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing system packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
