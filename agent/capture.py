"""A bounded, sampled capture of the traffic arriving on the agent's interface, written
as classic pcap, so a candidate policy can be replayed against this server's real traffic
(`bulwark rules replay`, the hub's replay page) before it is deployed.

Bounded three ways, whichever comes first: frames kept, seconds elapsed, bytes written;
only one frame in `sample_every` is kept. Frames are kept whole by default: the
reference evaluator counts an IPv4/IPv6 packet whose length field runs past the frame
as malformed (docs/plan.md), so a `snaplen` cut changes replay verdicts. Only frames the host
receives are kept (PACKET_OUTGOING is skipped): the guard sees ingress only.

The recorder is blocking (an AF_PACKET socket with a short timeout): the agent runs it
in a worker thread (`trio.to_thread.run_sync`). Needs CAP_NET_RAW, as the agent has.
"""
from __future__ import annotations

import socket
import struct
import time
import uuid
from dataclasses import dataclass

from agent.errors import AgentError
from rules_dsl.capture import REQUEST_BOUNDS

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
LINKTYPE_ETHERNET = 1
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")
# The most any one request may ask for, whatever the hub sends.
MAX_FRAMES, MAX_SECONDS, MAX_BYTES, MAX_SAMPLE_EVERY = (
    REQUEST_BOUNDS[name][1] for name in ("max_frames", "max_seconds", "max_bytes", "sample_every"))
MAX_SNAPLEN = 65535
MAX_PENDING_IDS = 64  # requests remembered as started, so a repeated document starts none again


class CaptureError(AgentError):
    """The capture could not start (no such interface, no permission)."""


@dataclass(frozen=True)
class Limits:
    max_frames: int = 10_000
    max_seconds: float = 30.0
    max_bytes: int = 8 * 1024 * 1024
    snaplen: int = MAX_SNAPLEN
    sample_every: int = 1

    def clamped(self) -> Limits:
        return Limits(max(1, min(self.max_frames, MAX_FRAMES)), max(0.1, min(self.max_seconds, MAX_SECONDS)),
                      max(PCAP_HEADER.size, min(self.max_bytes, MAX_BYTES)),
                      max(64, min(self.snaplen, MAX_SNAPLEN)), max(1, min(self.sample_every, MAX_SAMPLE_EVERY)))


@dataclass(frozen=True)
class Request:
    """A capture the hub asked for in its desired state (docs/agent-protocol.md, "Capture")."""
    id: str
    limits: Limits


def request_of(asked: object) -> Request:
    """The desired state's `capture` object as a Request, clamped to the MAX_* bounds
    whatever the hub sent. Raises CaptureError for anything that is not a request: the id
    must be a UUID (it names the upload's path), the limits whole numbers."""
    if not isinstance(asked, dict):
        raise CaptureError("the capture request is not an object")
    raw_id = asked.get("id")
    try:
        ident = str(uuid.UUID(raw_id)) if isinstance(raw_id, str) and len(raw_id) <= 64 else None
    except ValueError:
        ident = None
    if ident is None:
        raise CaptureError("the capture request's id is not a UUID")
    numbers = {}
    for name, (least, _) in REQUEST_BOUNDS.items():
        value = asked.get(name, least)
        if not isinstance(value, int) or isinstance(value, bool):
            raise CaptureError(f"the capture request's {name} is not a whole number")
        numbers[name] = value
    return Request(ident, Limits(max_frames=numbers["max_frames"], max_seconds=float(numbers["max_seconds"]),
                                 max_bytes=numbers["max_bytes"], sample_every=numbers["sample_every"]).clamped())


@dataclass(frozen=True)
class Capture:
    pcap: bytes
    frames: int        # kept
    seen: int          # received on the interface meanwhile (kept or not)
    ended_by: str      # frames | seconds | bytes


def record(iface: str, limits: Limits, *, clock=time.monotonic) -> Capture:
    """Capture on `iface` within `limits` (clamped to the MAX_* bounds)."""
    lim = limits.clamped()
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except OSError as exc:
        raise CaptureError(f"cannot open a packet socket: {exc}") from None
    with sock:
        try:
            sock.bind((iface, 0))
        except OSError as exc:
            raise CaptureError(f"cannot capture on {iface!r}: {exc}") from None
        out = [PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, lim.snaplen, LINKTYPE_ETHERNET)]
        size, kept, seen = PCAP_HEADER.size, 0, 0
        deadline = clock() + lim.max_seconds
        ended = "seconds"
        while True:
            left = deadline - clock()
            if left <= 0:
                break
            sock.settimeout(min(left, 0.2))
            try:
                data, addr = sock.recvfrom(65535)
            except TimeoutError:
                continue
            if addr[2] == PACKET_OUTGOING:
                continue
            seen += 1
            if (seen - 1) % lim.sample_every:
                continue
            cut = data[:lim.snaplen]
            if size + RECORD_HEADER.size + len(cut) > lim.max_bytes:
                ended = "bytes"
                break
            now = time.time_ns()
            out.append(RECORD_HEADER.pack(now // 10**9, now % 10**9 // 1000, len(cut), len(data)))
            out.append(cut)
            size += RECORD_HEADER.size + len(cut)
            kept += 1
            if kept >= lim.max_frames:
                ended = "frames"
                break
    return Capture(b"".join(out), kept, seen, ended)
