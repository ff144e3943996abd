"""A fake of Anthropic's `POST /v1/messages` on loopback that the real `anthropic` client
talks to (`base_url`). Answers are scripted in order (`script`); each is a dict:

    {"text": "...", "stop_reason": "end_turn"|"max_tokens"|"refusal"}   a Message
    {"status": 429|529, "retry_after": "0"}                             an error body

A request with `"stream": true` gets the same Message as server-sent events
(message_start, content_block_start/delta/stop, message_delta, message_stop), the
shapes of the Messages API's streaming reference. `requests` keeps every body received.
"""
from __future__ import annotations

import json
import threading
from typing import Any

from tests.loopback import LoopbackServer, QuietHandler

ERRORS = {429: "rate_limit_error", 529: "overloaded_error"}


def message(text: str, stop_reason: str = "end_turn", model: str = "claude-test") -> dict[str, Any]:
    return {"id": "msg_fake01", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": stop_reason, "stop_sequence": None,
            "usage": {"input_tokens": 100, "output_tokens": 50}}


def _events(m: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    start = {**m, "content": [], "stop_reason": None, "usage": {"input_tokens": 100, "output_tokens": 1}}
    out = [("message_start", {"type": "message_start", "message": start})]
    for i, block in enumerate(m["content"]):
        out.append(("content_block_start", {"type": "content_block_start", "index": i,
                                            "content_block": {"type": "text", "text": ""}}))
        text = block["text"]
        for j in range(0, len(text), 16):
            out.append(("content_block_delta", {"type": "content_block_delta", "index": i,
                                                "delta": {"type": "text_delta", "text": text[j:j + 16]}}))
        out.append(("content_block_stop", {"type": "content_block_stop", "index": i}))
    out.append(("message_delta", {"type": "message_delta",
                                  "delta": {"stop_reason": m["stop_reason"], "stop_sequence": None},
                                  "usage": {"output_tokens": 50}}))
    out.append(("message_stop", {"type": "message_stop"}))
    return out


class AnthropicFake(LoopbackServer):
    def __init__(self) -> None:
        self.script: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                with fake._lock:
                    fake.requests.append(body)
                    fake.headers.append(dict(self.headers))
                    step = fake.script.pop(0) if fake.script else {"text": "no script left"}
                if self.path != "/v1/messages":
                    return self._json(404, {"type": "error", "error": {"type": "not_found_error",
                                                                       "message": self.path}})
                if "status" in step:
                    return self._json(step["status"], {"type": "error", "error": {
                        "type": ERRORS.get(step["status"], "api_error"), "message": "fake"}},
                        {"retry-after": step.get("retry_after", "0"), "x-should-retry": "true"})
                m = message(step.get("text", ""), step.get("stop_reason", "end_turn"), body.get("model", ""))
                if not body.get("stream"):
                    return self._json(200, m)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for name, data in _events(m):
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

            def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.send_header("request-id", "req_fake")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        super().__init__(Handler)
