"""A real SMTP server (aiosmtpd) on loopback for the tests that follow a mail out of the
hub's outbox: what it received, and a bounded wait for it (the server takes mail on its
own thread)."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from email.message import Message as Email
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from demo.processes import free_port


class SmtpInbox(Message):
    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()
        self.received: list[Email] = []

    def handle_message(self, message: Email) -> None:
        self.received.append(message)

    def wait_for(self, count: int = 1, timeout_s: float = 5.0) -> list[Email]:
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


@contextlib.contextmanager
def smtp_inbox(**controller: Any) -> Iterator[SmtpInbox]:
    """Serve until the block ends; `controller` passes TLS settings to aiosmtpd."""
    inbox = SmtpInbox()
    server = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **controller)
    server.start()
    try:
        yield inbox
    finally:
        server.stop()
