#!/usr/bin/env python3
"""A real WebRTC peer (aiortc) calling a SIP UAS through Janus's SIP plugin.

  sip_peer.py JANUS_URL PEER_IP SECONDS SIP_URI

Creates a session, attaches janus.plugin.sip, registers as a guest (no REGISTER is sent),
calls SIP_URI with an audio-only offer gathered on PEER_IP, waits for `accepted` and for
WebRTC to come up, lets media flow SECONDS, hangs up (Janus sends the BYE), detaches and
destroys the session. Prints the session and handle ids and the Call-ID (chosen by
Janus) as JSON on its last line.
"""
import asyncio
import json
import sys

from peer_util import Tone, call, close_pc, desc_of, jsep_of, new_pc, use_host, wait_for

BASE, PEER_IP, SECONDS, URI = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
use_host(PEER_IP)


def result(ev):
    return ev.get("plugindata", {}).get("data", {}).get("result", {}) or {}


async def main():
    s = call(BASE, {"janus": "create"})["data"]["id"]
    h = call(f"{BASE}/{s}", {"janus": "attach", "plugin": "janus.plugin.sip", "opaque_id": "e2e-sip"})["data"]["id"]
    hp = f"{BASE}/{s}/{h}"
    call(hp, {"janus": "message", "body": {"request": "register", "type": "guest", "username": "sip:carol@e2e.example"}})
    await wait_for(BASE, s, lambda e: result(e).get("event") == "registered")
    pc = new_pc()
    pc.addTransceiver(Tone(), direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    call(hp, {"janus": "message", "body": {"request": "call", "uri": URI}, "jsep": jsep_of(pc.localDescription)})
    call(hp, {"janus": "trickle", "candidate": {"completed": True}})
    ev = await wait_for(BASE, s, lambda e: result(e).get("event") in ("accepted", "hangup"))
    if result(ev).get("event") != "accepted":
        raise SystemExit(f"call not accepted: {json.dumps(ev)}")
    call_id = result(ev).get("call_id") or ev["plugindata"]["data"].get("call_id")
    await pc.setRemoteDescription(desc_of(ev["jsep"]))
    await wait_for(BASE, s, lambda e: e.get("janus") == "webrtcup")
    await asyncio.sleep(SECONDS)
    call(hp, {"janus": "message", "body": {"request": "hangup"}})
    await wait_for(BASE, s, lambda e: result(e).get("event") == "hangup")
    await close_pc(pc)
    await asyncio.sleep(1)  # Janus's own hangup of the PeerConnection comes before the detach
    call(hp, {"janus": "detach"})
    call(f"{BASE}/{s}", {"janus": "destroy"})
    print(json.dumps({"session_id": s, "handle_id": h, "call_id": call_id}))


asyncio.run(main())
