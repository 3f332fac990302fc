#!/usr/bin/env bash
# Records fixtures/janus/1.4.1/ (fixtures/janus/1.4.1/README.md) with Janus 1.4.1 built
# by .ci/build-janus and the janus-lab recipe (<shared>/janus-lab, unchanged): every
# scenario of its run_all.sh, then
#   combined-stats-videoroom    the VideoRoom driver with combine_media_stats = true
#                               (grouping off, compact)
#   videoroom-2pub-2sub-20s     the VideoRoom driver with --seconds 22, long enough for
#                               the core status update (type 256, status "update", every 15 s)
# and checks what must be there (valid JSON per line, sip-out events with LF line
# endings, a status update). The failure scenarios are recorded by record-failures.sh.
#
#   tests/lab/record-1.4.1.sh          Needs root. Env: HEPLINK_SHARED, VENV, WORK_DIR.
# Janus and driver logs stay in $WORK_DIR/logs (default /tmp/heplink-lab-1.4.1/logs).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SHARED="${HEPLINK_SHARED:-$ROOT/../shared}"
LAB="$(cd "$SHARED/janus-lab/scripts" && pwd)"
export VENV="${VENV:-/tmp/janus-fixtures-venv}"
export PY="$VENV/bin/python"
WORK_DIR="${WORK_DIR:-/tmp/heplink-lab-1.4.1}"
DEST="$ROOT/fixtures/janus/1.4.1"

P="$("$ROOT/.ci/build-janus" | tail -1)"
export JANUS_BIN="$P/bin/janus" JANUS_LIBDIR="$P/lib/janus"
"$JANUS_BIN" --version 2>/dev/null | head -1 >&2

rm -rf "$WORK_DIR"; mkdir -p "$WORK_DIR/logs" "$DEST"
OUT_DIR="$WORK_DIR" bash "$LAB/run_all.sh" >&2
run() {
  local s="$1"; shift
  echo "=== scenario $s" >&2
  OUT_DIR="$WORK_DIR" bash "$LAB/run_scenario.sh" "$s" "$@" >"$WORK_DIR/logs/$s.run.txt" 2>&1 ||
    { tail -30 "$WORK_DIR/logs/$s.run.txt" >&2; echo "scenario $s FAILED" >&2; exit 1; }
  grep -E "^evh_sink: [0-9]" "$WORK_DIR/logs/$s.run.txt" >&2 || true
}
COMBINE_MEDIA_STATS=true run combined-stats-videoroom "$PY" drive_videoroom_webrtc.py
run videoroom-2pub-2sub-20s "$PY" drive_videoroom_webrtc.py --seconds 22

for f in "$WORK_DIR"/*.{jsonl,txt}; do cp "$f" "$DEST/"; done

# checks
"$PY" - "$DEST" <<'EOF'
import glob, gzip, json, os, sys
dest = sys.argv[1]
bad = 0
for path in sorted(glob.glob(os.path.join(dest, "*.jsonl"))):
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        try:
            json.loads(line)
        except ValueError as e:
            print(f"{path}:{n}: not JSON: {e}"); bad += 1
def events(name):
    for line in open(os.path.join(dest, name), encoding="utf-8"):
        v = json.loads(line)
        yield from (v if isinstance(v, list) else [v])
sip_out = [e["event"]["data"]["sip"] for e in events("sip-call-simple.jsonl")
           if e.get("type") == 64 and e["event"].get("data", {}).get("event") == "sip-out"]
crlf = sum("\r\n" in s for s in sip_out)
print(f"sip-call-simple: {len(sip_out)} sip-out events, {crlf} with CRLF")
if not sip_out or crlf:
    print("expected sip-out events with LF-only line endings"); bad += 1
upd = [e for e in events("videoroom-2pub-2sub-20s.jsonl") if e.get("type") == 256 and e["event"].get("status") == "update"]
print(f"videoroom-2pub-2sub-20s: {len(upd)} core status updates")
if not upd:
    bad += 1
sys.exit(1 if bad else 0)
EOF
ls -la "$DEST" >&2
