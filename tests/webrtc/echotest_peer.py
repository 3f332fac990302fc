#!/usr/bin/env python3
"""A real WebRTC peer (aiortc) talking to Janus's echotest over its HTTP API.

  echotest_peer.py JANUS_URL PEER_IP SECONDS

Creates a session, attaches janus.plugin.echotest, sends an offer with Opus audio and VP8
video gathered on PEER_IP only, waits for the answer and for media to flow, sends one
configure request while it does, then hangs up, detaches and destroys the session.
Prints the session and handle ids as JSON on its last line.
"""
import asyncio
import json
import sys

from peer_util import Bars, Tone, call, close_pc, desc_of, jsep_of, new_pc, use_host, wait_for

BASE, PEER_IP, SECONDS = sys.argv[1], sys.argv[2], float(sys.argv[3])
use_host(PEER_IP)


async def main():
    s = call(BASE, {"janus": "create"})["data"]["id"]
    h = call(f"{BASE}/{s}", {"janus": "attach", "plugin": "janus.plugin.echotest", "opaque_id": "e2e-webrtc"})["data"]["id"]
    pc = new_pc()
    pc.addTransceiver(Tone(), direction="sendrecv")
    pc.addTransceiver(Bars(), direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    call(f"{BASE}/{s}/{h}", {"janus": "message", "body": {"audio": True, "video": True}, "jsep": jsep_of(pc.localDescription)})
    ev = await wait_for(BASE, s, lambda e: "jsep" in e)
    call(f"{BASE}/{s}/{h}", {"janus": "trickle", "candidate": {"completed": True}})
    await pc.setRemoteDescription(desc_of(ev["jsep"]))
    await wait_for(BASE, s, lambda e: e.get("janus") == "webrtcup")
    await asyncio.sleep(SECONDS / 2)
    call(f"{BASE}/{s}/{h}", {"janus": "message", "body": {"bitrate": 96000}})
    await asyncio.sleep(SECONDS / 2)
    call(f"{BASE}/{s}/{h}", {"janus": "hangup"})
    await asyncio.sleep(0.5)
    await close_pc(pc)
    call(f"{BASE}/{s}/{h}", {"janus": "detach"})
    call(f"{BASE}/{s}", {"janus": "destroy"})
    print(json.dumps({"session_id": s, "handle_id": h}))


asyncio.run(main())
