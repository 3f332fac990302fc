#!/usr/bin/env python3
"""A real WebRTC peer (aiortc) talking to Janus's echotest over its HTTP API.

  echotest_peer.py JANUS_URL PEER_IP SECONDS

Creates a session, attaches janus.plugin.echotest, sends an offer with Opus audio and VP8
video gathered on PEER_IP only, waits for the answer and for media to flow, sends one
configure request while it does, then hangs up, detaches and destroys the session.
Prints the session and handle ids as JSON on its last line.
"""
import asyncio
import fractions
import json
import math
import random
import string
import sys
import time
import urllib.request
from array import array

import aioice.ice
import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

BASE, PEER_IP, SECONDS = sys.argv[1], sys.argv[2], float(sys.argv[3])
# Janus gathers no candidates on loopback: the peer uses one address of the veth.
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: [PEER_IP]


def call(url, body):
    body = dict(body, transaction="".join(random.choices(string.ascii_letters, k=12)))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())


def poll(session, want, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(f"{BASE}/{session}?maxev=1", timeout=35) as r:
            ev = json.loads(r.read())
        if want(ev):
            return ev
    raise TimeoutError("no such event")


class Tone(AudioStreamTrack):
    def __init__(self):
        super().__init__()
        self.n, self.start = 0, None

    async def recv(self):
        self.start = self.start or time.time()
        wait = self.start + self.n * 0.02 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        pcm = array("h", (int(8000 * math.sin(2 * math.pi * 440 * (self.n * 960 + i) / 48000)) for i in range(960)))
        f = av.AudioFrame(format="s16", layout="mono", samples=960)
        f.planes[0].update(pcm.tobytes())
        f.sample_rate, f.pts, f.time_base = 48000, self.n * 960, fractions.Fraction(1, 48000)
        self.n += 1
        return f


class Bars(VideoStreamTrack):
    def __init__(self):
        super().__init__()
        self.n, self.start = 0, None

    async def recv(self):
        self.start = self.start or time.time()
        wait = self.start + self.n / 15 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        f = av.VideoFrame(320, 240, "yuv420p")
        for i, p in enumerate(f.planes):
            p.update(bytes([60 + (self.n * 3) % 150 if i == 0 else 128]) * p.buffer_size)
        f.pts, f.time_base = int(self.n * 6000), fractions.Fraction(1, 90000)
        self.n += 1
        return f


async def main():
    s = call(BASE, {"janus": "create"})["data"]["id"]
    h = call(f"{BASE}/{s}", {"janus": "attach", "plugin": "janus.plugin.echotest", "opaque_id": "e2e-webrtc"})["data"]["id"]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    holes = []

    @pc.on("track")
    def on_track(track):
        bh = MediaBlackhole()
        bh.addTrack(track)
        holes.append(bh)
        asyncio.ensure_future(bh.start())

    pc.addTransceiver(Tone(), direction="sendrecv")
    pc.addTransceiver(Bars(), direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    offer = {"type": pc.localDescription.type, "sdp": pc.localDescription.sdp}
    call(f"{BASE}/{s}/{h}", {"janus": "message", "body": {"audio": True, "video": True}, "jsep": offer})
    ev = await asyncio.to_thread(poll, s, lambda e: "jsep" in e)
    call(f"{BASE}/{s}/{h}", {"janus": "trickle", "candidate": {"completed": True}})
    await pc.setRemoteDescription(RTCSessionDescription(sdp=ev["jsep"]["sdp"], type=ev["jsep"]["type"]))
    await asyncio.to_thread(poll, s, lambda e: e.get("janus") == "webrtcup")
    await asyncio.sleep(SECONDS / 2)
    call(f"{BASE}/{s}/{h}", {"janus": "message", "body": {"bitrate": 96000}})
    await asyncio.sleep(SECONDS / 2)
    call(f"{BASE}/{s}/{h}", {"janus": "hangup"})
    await asyncio.sleep(0.5)
    await pc.close()
    for bh in holes:
        try:
            await bh.stop()
        except Exception:
            pass
    call(f"{BASE}/{s}/{h}", {"janus": "detach"})
    call(f"{BASE}/{s}", {"janus": "destroy"})
    print(json.dumps({"session_id": s, "handle_id": h}))


asyncio.run(main())
