#!/usr/bin/env bash
# Records the failure fixtures (fixtures/janus/FAILURES.md) with the janus-lab recipe
# (<shared>/janus-lab, unchanged): one run_scenario.sh per failure, driven by
# drive_failure.py here, with Janus 1.4.1 (.ci/build-janus) and/or Debian's 1.1.2.
#
#   tests/lab/record-failures.sh [1.4.1|1.1.2|both] [scenario...]
#     scenarios: fail-ice fail-dtls-fingerprint fail-dtls-timeout fail-dtls-timeout-sub
#                fail-media-stops fail-loss-20
#
# Writes fixtures/janus/1.4.1/fail-*.{jsonl,raw.jsonl,requests.txt,wsevh.jsonl,
# wsevh.handshake.txt} (1.4.1) and fixtures/janus/fail-*.* (1.1.2); the Janus and driver
# logs (and the driver's roles.json: which handle is which) stay in $WORK_DIR
# (default /tmp/heplink-lab-failures/<version>/logs). Needs root (network namespace,
# nftables). Env: HEPLINK_SHARED, VENV (default /tmp/janus-fixtures-venv).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SHARED="${HEPLINK_SHARED:-$ROOT/../shared}"
LAB="$(cd "$SHARED/janus-lab/scripts" && pwd)"
export VENV="${VENV:-/tmp/janus-fixtures-venv}"
export PY="$VENV/bin/python"
WORK_DIR="${WORK_DIR:-/tmp/heplink-lab-failures}"

which="${1:-both}"; shift || true
ALL=(fail-ice fail-dtls-fingerprint fail-dtls-timeout fail-dtls-timeout-sub fail-media-stops fail-loss-20)
SCENARIOS=("$@"); [ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=("${ALL[@]}")

[ -x "$PY" ] && "$PY" -c 'import aiortc' 2>/dev/null || bash "$LAB/setup.sh" >&2
command -v nft >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables; }
export PYTHONPATH="$LAB"

mode_of() {
  case "$1" in
    fail-ice) echo "--mode ice" ;;
    fail-dtls-fingerprint) echo "--mode dtls-fingerprint" ;;
    fail-dtls-timeout) echo "--mode dtls-timeout" ;;
    fail-dtls-timeout-sub) echo "--mode dtls-timeout --role sub" ;;
    fail-media-stops) echo "--mode media-stops" ;;
    fail-loss-20) echo "--mode loss --loss-percent 20 --lossy 20" ;;
    *) echo "unknown scenario $1" >&2; return 1 ;;
  esac
}

record() {  # version dest-dir
  local ver="$1" dest="$2" out="$WORK_DIR/$1" s t
  rm -rf "$out"; mkdir -p "$out/logs" "$dest"
  for s in "${SCENARIOS[@]}"; do
    t=$(date +%s)
    echo "=== $ver $s" >&2
    # shellcheck disable=SC2046
    OUT_DIR="$out" bash "$LAB/run_scenario.sh" "$s" "$PY" "$HERE/drive_failure.py" $(mode_of "$s") \
      >"$out/logs/$s.run.txt" 2>&1 || { tail -30 "$out/logs/$s.run.txt" >&2; echo "scenario $s FAILED ($ver)" >&2; exit 1; }
    grep -E '^(roles:|evh_sink: [0-9]|.*Janus hung up|nft dropped)' "$out/logs/$s.run.txt" >&2 || true
    for f in "$out/$s".{jsonl,raw.jsonl,requests.txt,wsevh.jsonl,wsevh.handshake.txt}; do
      [ -e "$f" ] && cp "$f" "$dest/"
    done
    echo "    ($(( $(date +%s) - t )) s) -> $dest/$s.*" >&2
  done
}

case "$which" in
  1.4.1|both)
    P="$("$ROOT/.ci/build-janus" | tail -1)"
    JANUS_BIN="$P/bin/janus" JANUS_LIBDIR="$P/lib/janus" record 1.4.1 "$ROOT/fixtures/janus/1.4.1"
    ;;&
  1.1.2|both)
    command -v janus >/dev/null || bash "$LAB/setup.sh" >&2
    JANUS_BIN= JANUS_LIBDIR= record 1.1.2 "$ROOT/fixtures/janus"
    ;;
  1.4.1) ;;
  *) echo "usage: $0 [1.4.1|1.1.2|both] [scenario...]" >&2; exit 2 ;;
esac
