"""Helpers of the WebRTC peers: Janus's HTTP API, synthetic audio/video tracks, and
aiortc PeerConnections that gather on one address of the test's veth."""
import asyncio
import fractions
import json
import math
import random
import string
import time
import urllib.request
from array import array

import aioice.ice
import av
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaBlackhole
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack


def use_host(ip):
    """Janus gathers no candidates on loopback: peers use one address of the veth."""
    aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: [ip]


def call(url, body):
    body = dict(body, transaction="".join(random.choices(string.ascii_letters, k=12)))
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=15) as r:
        return json.loads(r.read())


def poll(base, session, want, timeout=20):
    """Long-polls the session until an event satisfies `want`; others are dropped."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with urllib.request.urlopen(f"{base}/{session}?maxev=1", timeout=35) as r:
            ev = json.loads(r.read())
        if want(ev):
            return ev
    raise TimeoutError("no such event")


async def wait_for(base, session, want, timeout=20):
    return await asyncio.to_thread(poll, base, session, want, timeout)


def jsep_of(desc):
    return {"type": desc.type, "sdp": desc.sdp}


def desc_of(jsep):
    return RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"])


def new_pc():
    """A PeerConnection that plays whatever it receives into a blackhole."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    pc.holes = []

    @pc.on("track")
    def on_track(track):
        bh = MediaBlackhole()
        bh.addTrack(track)
        pc.holes.append(bh)
        asyncio.ensure_future(bh.start())

    return pc


async def close_pc(pc):
    await pc.close()
    for bh in pc.holes:
        try:
            await bh.stop()
        except Exception:
            pass


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
