#!/usr/bin/env python3
"""VideoRoom calls in which one PeerConnection fails, beside two that work.

  drive_failure.py --mode ice|dtls-fingerprint|dtls-timeout|media-stops|loss [--role pub|sub] [-v]

Run it through janus-lab's run_scenario.sh (it needs the lab's network namespace, and
`nft` to break one peer's UDP inside it); it imports the lab's janus_api.py and
rtc_util.py (PYTHONPATH=<shared>/janus-lab/scripts, or the current directory, which
run_scenario.sh sets to that folder). See README.md here.

Layout (room 4343, created and destroyed by an admin handle in its own session):
  pubA  session SA, publisher, peer 127.0.0.4            works normally (ok)
  subC  session SC, subscriber to pubA, peer 127.0.0.3   works normally (ok)
  the failing PeerConnection, in session SB: subX (subscriber to pubA, peer 127.0.0.6;
  aiortc answers Janus's offer, so aiortc is the DTLS client) or pubB (publisher, peer
  127.0.0.5; Janus answers aiortc's offer with a=setup:active: Janus is the DTLS client),
  --role sub|pub, by default:
    ice           subX: all its UDP dropped after its join (nftables), so ICE never
                  connects
    dtls-timeout  pubB: only its DTLS records (UDP whose first byte is 20-63) dropped
                  after its join; STUN passes (with --role sub: subX, Janus the DTLS
                  server, which then never sends a record of its own)
    dtls-fingerprint  pubB: its SDP carries a wrong a=fingerprint (every hex digit
                  changed)
    media-stops   pubB: publishes, media flows, then its tracks stop producing frames
                  (no RTP; ICE, DTLS, RTCP stay up) for --stopped seconds
    loss          pubB: publishes, then 20 % of the UDP between 127.0.0.5 and Janus
                  (127.0.0.2), each way, is dropped for --lossy seconds
Every PeerConnection ends with a hangup request (unless Janus hung it up already) and
a detach; publishers send `leave` first. The driver prints the session/handle ids of
each role, and writes them as JSON into $JFX_EXTRA_LOGS/roles.json when that is set.
"""
import argparse
import asyncio
import json
import os
import re
import subprocess
import sys

sys.path.insert(1, os.environ.get("JANUS_LAB_SCRIPTS", os.getcwd()))
from janus_api import Session  # noqa: E402
from rtc_util import SineAudio, SyntheticVideo, desc_of, jsep_of, new_pc, set_local, sink_remote_tracks, stop_holes  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--mode", required=True, choices=["ice", "dtls-fingerprint", "dtls-timeout", "media-stops", "loss"])
ap.add_argument("--role", choices=["pub", "sub"],
                help="the failing PeerConnection: publisher pubB or subscriber subX "
                     "(default: sub for ice, pub otherwise)")
ap.add_argument("--room", type=int, default=4343)
ap.add_argument("--lossy", type=float, default=20, help="seconds of loss (mode loss)")
ap.add_argument("--loss-percent", type=int, default=20)
ap.add_argument("--before", type=float, default=4, help="seconds of good media before the failure (media-stops, loss)")
ap.add_argument("--stopped", type=float, default=8, help="seconds without media (mode media-stops)")
ap.add_argument("--hangup-timeout", type=float, default=60, help="how long to wait for Janus's hangup")
ap.add_argument("-v", action="store_true")
args = ap.parse_args()
ROOM = args.room
SECRET = "roomsecret"
JANUS_MEDIA = "127.0.0.2"


def log(*a):
    if args.v:
        print(*a, flush=True)


def pdata(ev):
    return ev.get("plugindata", {}).get("data", {})


# --- nftables inside the namespace: media between 127.0.0.x runs over lo, so every
# packet passes the input hook once; a rule on saddr and one on daddr cover both ways.
# The input hook, not output: a drop in output makes the sender's sendto() fail (EPERM),
# which a real network never does (Janus would log "Error sending DTLS message").
NFT_TABLE = "jfxfail"


def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True)
    print("nft:", " | ".join(l.strip() for l in script.strip().splitlines()), flush=True)


def nft_drop(peer, match, other="0.0.0.0/0"):
    """Drop the UDP packets from and to `peer` (and `other`) that also match `match`."""
    nft(f"""
table inet {NFT_TABLE} {{
  chain in {{
    type filter hook input priority 0; policy accept;
    ip saddr {peer} ip daddr {other} meta l4proto udp {match} counter drop
    ip saddr {other} ip daddr {peer} meta l4proto udp {match} counter drop
  }}
}}
""")


def nft_clear():
    r = subprocess.run(["nft", "list", "table", "inet", NFT_TABLE], capture_output=True, text=True)
    if r.returncode == 0:
        counters = re.findall(r"counter packets (\d+) bytes (\d+)", r.stdout)
        print("nft dropped (saddr rule, daddr rule):", counters, flush=True)
        subprocess.run(["nft", "delete", "table", "inet", NFT_TABLE], check=True)


# --- tracks that can stop producing frames (the RTP sender then waits in recv())
class Gate:
    def __init__(self):
        self.open = asyncio.Event()
        self.open.set()


class GatedAudio(SineAudio):
    def __init__(self, gate, freq):
        super().__init__(freq)
        self.gate = gate

    async def recv(self):
        await self.gate.open.wait()
        return await super().recv()


class GatedVideo(SyntheticVideo):
    def __init__(self, gate, shade):
        super().__init__(shade=shade)
        self.gate = gate

    async def recv(self):
        await self.gate.open.wait()
        return await super().recv()


def wrong_fingerprint(sdp):
    """Every hex digit of every a=fingerprint changed: the certificate cannot match."""
    def flip(m):
        return m.group(1) + re.sub(r"[0-9A-Fa-f]", lambda d: "%X" % ((int(d.group(0), 16) + 7) % 16), m.group(2))
    out, n = re.subn(r"(a=fingerprint:\S+ )([0-9A-Fa-f:]+)", flip, sdp)
    assert n > 0, "no a=fingerprint in the SDP"
    return out


def is_hangup(ev):
    return ev.get("janus") == "hangup"


class Peer:
    def __init__(self, name, session, host):
        self.name, self.session, self.host = name, session, host
        self.pc = None
        self.holes = []
        self.hung_up = False
        self.h = None

    async def attach(self):
        self.h = await self.session.attach("janus.plugin.videoroom", opaque_id=f"videoroom-{self.name}")

    async def wait_webrtcup(self, timeout=20):
        await self.h.wait_event(lambda e: e.get("janus") == "webrtcup", timeout=timeout)
        print(f"{self.name}: webrtcup", flush=True)

    async def wait_janus_hangup(self, timeout):
        """Janus ends the PeerConnection itself: wait for its hangup (reason) on this handle.
        Other events on the way (media, slowlink, webrtcup) are printed."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()

        def pred(ev):
            if ev.get("janus") in ("media", "slowlink", "webrtcup", "trickle"):
                print(f"{self.name}: +{loop.time() - t0:.1f}s {json.dumps(ev)[:200]}", flush=True)
            return is_hangup(ev)

        ev = await self.h.wait_event(pred, timeout=timeout)
        self.hung_up = True
        print(f"{self.name}: +{loop.time() - t0:.1f}s Janus hung up: {json.dumps(ev)}", flush=True)
        return ev

    async def end(self, leave=False):
        if leave:
            try:
                ev = await self.h.call({"request": "leave"}, timeout=10)
                print(f"{self.name}: leave -> {json.dumps(pdata(ev))}", flush=True)
            except Exception as e:
                print(f"{self.name}: leave failed: {e!r}", flush=True)
        if not self.hung_up:
            await self.h.hangup()
            try:
                ev = await self.h.wait_event(is_hangup, timeout=5)
                print(f"{self.name}: hangup -> {json.dumps(ev)}", flush=True)
            except asyncio.TimeoutError:
                print(f"{self.name}: no hangup event after the hangup request", flush=True)
        if self.pc is not None:
            await self.pc.close()
        await stop_holes(self.holes)
        await self.h.detach()
        print(f"{self.name}: detached", flush=True)


class Publisher(Peer):
    def __init__(self, name, session, host, shade, freq):
        super().__init__(name, session, host)
        self.gate = Gate()
        self.shade, self.freq = shade, freq

    async def join(self):
        await self.attach()
        ev = await self.h.call({"request": "join", "ptype": "publisher", "room": ROOM, "display": self.name})
        d = pdata(ev)
        self.id, self.private_id = d["id"], d["private_id"]
        print(f"{self.name}: joined room={ROOM} id={self.id} private_id={self.private_id}", flush=True)

    async def publish(self, mangle=None):
        self.pc = new_pc()
        self.holes = sink_remote_tracks(self.pc, self.name, print)
        self.pc.addTransceiver(GatedAudio(self.gate, self.freq), direction="sendonly")
        self.pc.addTransceiver(GatedVideo(self.gate, self.shade), direction="sendonly")
        await set_local(self.pc, await self.pc.createOffer(), self.host)
        jsep = jsep_of(self.pc.localDescription)
        if mangle:
            jsep["sdp"] = mangle(jsep["sdp"])
        ev = await self.h.call({"request": "publish", "display": self.name}, jsep=jsep)
        print(f"{self.name}: publish -> {json.dumps(pdata(ev))}", flush=True)
        await self.h.trickle_completed()
        await self.pc.setRemoteDescription(desc_of(ev["jsep"]))


class Subscriber(Peer):
    def __init__(self, name, session, host, feeds):
        super().__init__(name, session, host)
        self.feeds = feeds

    async def join(self):
        await self.attach()
        ev = await self.h.call({"request": "join", "ptype": "subscriber", "room": ROOM,
                                "streams": [{"feed": f} for f in self.feeds]})
        print(f"{self.name}: join -> {json.dumps(pdata(ev))[:300]}", flush=True)
        self.offer = ev["jsep"]

    async def start(self, mangle=None):
        self.pc = new_pc()
        self.holes = sink_remote_tracks(self.pc, self.name, print)
        await self.pc.setRemoteDescription(desc_of(self.offer))
        await set_local(self.pc, await self.pc.createAnswer(), self.host)
        jsep = jsep_of(self.pc.localDescription)
        if mangle:
            jsep["sdp"] = mangle(jsep["sdp"])
        ev = await self.h.call({"request": "start"}, jsep=jsep)
        print(f"{self.name}: start -> {json.dumps(pdata(ev))}", flush=True)
        await self.h.trickle_completed()


async def main():
    sm = await Session(log=log).create()
    adm = await sm.attach("janus.plugin.videoroom", opaque_id="videoroom-admin")
    print("create ->", await adm.request({"request": "create", "room": ROOM, "description": f"failure: {args.mode}",
                                          "secret": SECRET, "publishers": 6, "bitrate": 256000,
                                          "audiocodec": "opus", "videocodec": "vp8",
                                          "notify_joining": True, "permanent": False}), flush=True)
    sa = await Session(log=log).create()
    sb = await Session(log=log).create()
    sc = await Session(log=log).create()

    pub_a = Publisher("pubA", sa, "127.0.0.4", 0, 440.0)
    await pub_a.join()
    await pub_a.publish()
    await pub_a.wait_webrtcup()
    sub_c = Subscriber("subC", sc, "127.0.0.3", [pub_a.id])
    await sub_c.join()
    await sub_c.start()
    await sub_c.wait_webrtcup()
    await asyncio.sleep(2)

    mode = args.mode
    role = args.role or ("sub" if mode == "ice" else "pub")
    if role == "sub":
        bad = Subscriber("subX", sb, "127.0.0.6", [pub_a.id])
    else:
        bad = Publisher("pubB", sb, "127.0.0.5", 60, 660.0)
    await bad.join()
    if mode in ("ice", "dtls-timeout", "dtls-fingerprint"):
        if mode != "dtls-fingerprint":
            nft_drop(bad.host, "" if mode == "ice" else "@th,64,8 20-63")
        mangle = wrong_fingerprint if mode == "dtls-fingerprint" else None
        await (bad.start(mangle) if role == "sub" else bad.publish(mangle))
        await bad.wait_janus_hangup(args.hangup_timeout)
        nft_clear()
    else:
        if role != "pub":
            sys.exit(f"--mode {mode} needs --role pub")
        await bad.publish()
        await bad.wait_webrtcup()
        await asyncio.sleep(args.before)
        if mode == "media-stops":
            print("pubB: tracks stop producing frames", flush=True)
            bad.gate.open.clear()
            try:
                await bad.wait_janus_hangup(args.stopped)
            except asyncio.TimeoutError:
                pass  # the expected outcome: Janus keeps the PeerConnection
        else:
            nft_drop(bad.host, f"numgen random mod 100 < {args.loss_percent}", other=JANUS_MEDIA)
            try:
                await bad.wait_janus_hangup(args.lossy)
            except asyncio.TimeoutError:
                pass
            nft_clear()
            await asyncio.sleep(1)
    await bad.end(leave=role == "pub")

    await asyncio.sleep(1)
    await sub_c.end()
    await pub_a.end(leave=True)
    print("destroy ->", await adm.request({"request": "destroy", "room": ROOM, "secret": SECRET}), flush=True)
    await adm.detach()

    roles = {
        "mode": mode,
        "admin": {"session_id": sm.id, "handle_id": adm.id},
        "pubA": {"session_id": sa.id, "handle_id": pub_a.h.id, "peer": pub_a.host, "feed_id": pub_a.id},
        "subC": {"session_id": sc.id, "handle_id": sub_c.h.id, "peer": sub_c.host},
        bad.name: {"session_id": sb.id, "handle_id": bad.h.id, "peer": bad.host, "failing": True},
    }
    print("roles:", json.dumps(roles), flush=True)
    if os.environ.get("JFX_EXTRA_LOGS"):
        with open(os.path.join(os.environ["JFX_EXTRA_LOGS"], "roles.json"), "w") as f:
            json.dump(roles, f, indent=1)
    for s in (sa, sb, sc, sm):
        await s.destroy()


asyncio.run(main())
