#!/usr/bin/env python3
"""Real WebRTC peers (aiortc) in a Janus VideoRoom, over Janus's HTTP API.

  videoroom_peer.py JANUS_URL PEER_IP SECONDS ROOM

An admin session creates ROOM; publishers A and B (a session each) join and publish Opus
+ VP8; viewer C (a session of its own) subscribes to both feeds on one PeerConnection,
viewer D (another session) to A's feed only.
After SECONDS of media everyone hangs up, detaches and leaves, the room is destroyed and
the sessions too. Prints the ids as JSON on its last line.
"""
import asyncio
import json
import sys

from peer_util import Bars, Tone, call, close_pc, desc_of, jsep_of, new_pc, use_host, wait_for

BASE, PEER_IP, SECONDS, ROOM = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
use_host(PEER_IP)
PLUGIN = "janus.plugin.videoroom"


def attach(opaque):
    s = call(BASE, {"janus": "create"})["data"]["id"]
    h = call(f"{BASE}/{s}", {"janus": "attach", "plugin": PLUGIN, "opaque_id": opaque})["data"]["id"]
    return s, h


def data(ev):
    return ev.get("plugindata", {}).get("data", {})


async def message(s, h, body, want, jsep=None):
    """An asynchronous plugin request: the answer comes as an event of the handle."""
    msg = {"janus": "message", "body": body}
    if jsep:
        msg["jsep"] = jsep
    call(f"{BASE}/{s}/{h}", msg)
    return await wait_for(BASE, s, lambda e: e.get("sender") == h and want(e))


async def publish(name):
    s, h = attach(f"videoroom-{name}")
    ev = await message(s, h, {"request": "join", "ptype": "publisher", "room": ROOM, "display": name},
                       lambda e: data(e).get("videoroom") == "joined")
    feed = data(ev)["id"]
    pc = new_pc()
    pc.addTransceiver(Tone(), direction="sendonly")
    pc.addTransceiver(Bars(), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    ev = await message(s, h, {"request": "publish"}, lambda e: "jsep" in e, jsep_of(pc.localDescription))
    call(f"{BASE}/{s}/{h}", {"janus": "trickle", "candidate": {"completed": True}})
    await pc.setRemoteDescription(desc_of(ev["jsep"]))
    await wait_for(BASE, s, lambda e: e.get("janus") == "webrtcup")
    return {"session": s, "handle": h, "feed": feed, "pc": pc}


async def subscribe(name, feeds):
    s, h = attach(f"videoroom-{name}")
    ev = await message(s, h, {"request": "join", "ptype": "subscriber", "room": ROOM,
                              "streams": [{"feed": f} for f in feeds]}, lambda e: "jsep" in e)
    pc = new_pc()
    await pc.setRemoteDescription(desc_of(ev["jsep"]))
    await pc.setLocalDescription(await pc.createAnswer())
    await message(s, h, {"request": "start"}, lambda e: data(e).get("started") == "ok", jsep_of(pc.localDescription))
    call(f"{BASE}/{s}/{h}", {"janus": "trickle", "candidate": {"completed": True}})
    await wait_for(BASE, s, lambda e: e.get("janus") == "webrtcup")
    return {"session": s, "handle": h, "pc": pc}


async def main():
    ms, mh = attach("videoroom-admin")
    created = call(f"{BASE}/{ms}/{mh}", {"janus": "message", "body": {"request": "create", "room": ROOM, "publishers": 4,
                                                                       "audiocodec": "opus", "videocodec": "vp8"}})
    assert data(created).get("videoroom") == "created", created
    a = await publish("pubA")
    b = await publish("pubB")
    c = await subscribe("subC", [a["feed"], b["feed"]])
    d = await subscribe("subD", [a["feed"]])
    await asyncio.sleep(SECONDS)
    for p in (d, c, b, a):
        call(f"{BASE}/{p['session']}/{p['handle']}", {"janus": "hangup"})
    await asyncio.sleep(0.5)
    for p in (d, c, b, a):
        await close_pc(p["pc"])
        call(f"{BASE}/{p['session']}/{p['handle']}", {"janus": "detach"})
        call(f"{BASE}/{p['session']}", {"janus": "destroy"})
    call(f"{BASE}/{ms}/{mh}", {"janus": "message", "body": {"request": "destroy", "room": ROOM}})
    call(f"{BASE}/{ms}/{mh}", {"janus": "detach"})
    call(f"{BASE}/{ms}", {"janus": "destroy"})
    print(json.dumps({"room": ROOM, "admin": [ms, mh], "pubA": [a["session"], a["handle"]],
                      "pubB": [b["session"], b["handle"]], "subC": [c["session"], c["handle"]], "subD": [d["session"], d["handle"]]}))


asyncio.run(main())
