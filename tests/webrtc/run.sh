#!/usr/bin/env bash
# The WebRTC end-to-end scenario, run by tests/e2e_webrtc.rs inside a network namespace
# of its own (unshare --net): the real Janus with its sample event handler posting to
# `heplink serve`, which sends HEP to `heplink listen`, while a real aiortc peer runs an
# echotest PeerConnection. Janus gathers no ICE candidates on loopback, so a veth carries
# 127.0.0.2 (Janus media) and 127.0.0.3 (the peers); APIs stay on 127.0.0.1. The `sip`
# scenario adds Janus's SIP plugin on 127.0.0.4 and a sipp UAS on 127.0.0.5:5070.
#   [JANUS_BIN=janus JANUS_LIBDIR=<plugins, transports, events>] run.sh HEPLINK PYTHON WORKDIR echotest|videoroom|sip
set -euo pipefail
HEPLINK="$1"; PY="$2"; WORK="$3"; SCENARIO="$4"; HERE="$(cd "$(dirname "$0")" && pwd)"
ip link set lo up
ip link add hl0 type veth peer name hl1
ip addr add 127.0.0.2/32 dev hl0
ip addr add 127.0.0.3/32 dev hl0
ip addr add 127.0.0.4/32 dev hl0
ip addr add 127.0.0.5/32 dev hl0
ip link set hl1 up
ip link set hl0 up
mkdir -p "$WORK/cfg"
P="${JANUS_LIBDIR:-/usr/lib/x86_64-linux-gnu/janus}"
SIP=libjanus_sip.so,
[ "$SCENARIO" != sip ] || SIP=""
cat > "$WORK/cfg/janus.jcfg" <<JCFG
general: { configs_folder = "$WORK/cfg" plugins_folder = "$P/plugins" transports_folder = "$P/transports" events_folder = "$P/events" loggers_folder = "$P/loggers" debug_level = 4 server_name = "heplink-webrtc" }
media: { rtp_port_range = "20000-20999" }
nat: { ice_enforce_list = "127.0.0.2" ignore_mdns = true }
plugins: { disable = "libjanus_audiobridge.so,libjanus_duktape.so,libjanus_lua.so,libjanus_nosip.so,libjanus_recordplay.so,${SIP}libjanus_streaming.so,libjanus_videocall.so,libjanus_voicemail.so,libjanus_textroom.so" }
transports: { disable = "libjanus_mqtt.so,libjanus_nanomsg.so,libjanus_pfunix.so,libjanus_rabbitmq.so,libjanus_websockets.so" }
loggers: { disable = "libjanus_jsonlog.so" }
events: { broadcast = true stats_period = 1 disable = "libjanus_gelfevh.so,libjanus_mqttevh.so,libjanus_nanomsgevh.so,libjanus_rabbitmqevh.so,libjanus_wsevh.so" }
JCFG
echo 'general: { json = "compact" base_path = "/janus" http = true port = 8088 ip = "127.0.0.1" https = false }
admin: { admin_http = false }
cors: { }' > "$WORK/cfg/janus.transport.http.jcfg"
echo 'general: { enabled = true events = "all" grouping = false json = "compact" backend = "http://127.0.0.1:8090/janus-events" }' > "$WORK/cfg/janus.eventhandler.sampleevh.jcfg"
echo 'general: { events = true }' > "$WORK/cfg/janus.plugin.echotest.jcfg"
echo 'general: { events = true }' > "$WORK/cfg/janus.plugin.videoroom.jcfg"
echo 'general: { local_ip = "127.0.0.4" rtp_port_range = "32000-32999" events = true }' > "$WORK/cfg/janus.plugin.sip.jcfg"

"$HEPLINK" listen --udp 127.0.0.1:9060 -q --jsonl "$WORK/hep.jsonl" > "$WORK/flows.txt" 2> "$WORK/listen.log" &
LISTEN=$!
"$HEPLINK" serve --http 127.0.0.1:8090 --ws off --metrics off --to udp://127.0.0.1:9060 2> "$WORK/serve.log" &
SERVE=$!
"${JANUS_BIN:-janus}" -F "$WORK/cfg" -L "$WORK/janus.log" -N -o > /dev/null 2>&1 &
JANUS=$!
for _ in $(seq 1 100); do
  (exec 3<>/dev/tcp/127.0.0.1/8088) 2> /dev/null && break || sleep 0.1
done
case "$SCENARIO" in
  echotest) PEER=("$HERE/echotest_peer.py" http://127.0.0.1:8088/janus 127.0.0.3 4) ;;
  videoroom) PEER=("$HERE/videoroom_peer.py" http://127.0.0.1:8088/janus 127.0.0.3 4 5151) ;;
  sip)
    PEER=("$HERE/sip_peer.py" http://127.0.0.1:8088/janus 127.0.0.3 3 sip:frontdesk@127.0.0.5:5070)
    sipp -sf "$HERE/sipp/uas.xml" -i 127.0.0.5 -p 5070 -mi 127.0.0.5 -mp 16400 -rtp_echo \
      -m 1 -nostdin -timeout 60s -trace_msg -message_file "$WORK/sipp.messages.log" \
      -trace_err -error_file "$WORK/sipp.errors.log" > "$WORK/sipp.log" 2>&1 &
    SIPP=$!
    trap '[ -z "$SIPP" ] || kill "$SIPP" 2> /dev/null' EXIT
    ;;
  *) echo "unknown scenario $SCENARIO" >&2; exit 2 ;;
esac
"$PY" "${PEER[@]}" > "$WORK/peer.json" 2> "$WORK/peer.log" || { cat "$WORK/peer.log" >&2; exit 3; }
if [ -n "${SIPP:-}" ]; then
  wait "$SIPP" || { SIPP=""; echo "sipp failed:" >&2; cat "$WORK/sipp.log" "$WORK/sipp.errors.log" >&2; exit 4; }
  SIPP=""
fi
sleep 1
kill -INT "$JANUS"; wait "$JANUS" || true
sleep 0.5
kill -TERM "$SERVE"; wait "$SERVE" || true
sleep 0.3
kill -TERM "$LISTEN"; wait "$LISTEN" || true
