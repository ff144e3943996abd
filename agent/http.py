"""The local endpoint: `/metrics` for Prometheus, `/status` (JSON) for `bulwark agent status`.

Plain HTTP/1.0 on a loopback port (config http_address/http_port): one request per
connection, GET only, nothing that changes state. The http actor has no channels of its
own to speak of; it reads the shared Telemetry.
"""
from __future__ import annotations

import functools
import json

import trio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agent.config import AgentConfig
from agent.telemetry import Telemetry

MAX_REQUEST = 8192


def respond(telemetry: Telemetry, request: bytes) -> bytes:
    line = request.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(line) < 2 or line[0] != "GET":
        return _http(405, "text/plain", b"GET only\n")
    path = line[1].split("?", 1)[0]
    if path == "/metrics":
        return _http(200, CONTENT_TYPE_LATEST, generate_latest(telemetry.registry))
    if path == "/status":
        return _http(200, "application/json", json.dumps(telemetry.snapshot()).encode())
    return _http(404, "text/plain", b"not found\n")


def _http(code: int, ctype: str, body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}[code]
    head = f"HTTP/1.0 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


async def run(config: AgentConfig, *, inbox, outbox, telemetry: Telemetry,
              task_status=trio.TASK_STATUS_IGNORED) -> None:
    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            data = b""
            with trio.move_on_after(5):
                while b"\r\n\r\n" not in data and len(data) < MAX_REQUEST:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
            try:
                await stream.send_all(respond(telemetry, data))
            except trio.BrokenResourceError:
                pass

    async with inbox, outbox:
        if not config.http_port:
            task_status.started()
            await trio.sleep_forever()
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(trio.serve_tcp, handle, config.http_port,
                                                  host=config.http_address))
            task_status.started()
