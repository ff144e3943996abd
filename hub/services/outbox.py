"""The outbox: the one place messages leave the hub from, each retried until it is sent
or given up on (the dead letter, which a person can replay).

Invariants:
- A message is a row before it is anything else: a hub that stops mid-way sends it when
  it is back, and every attempt is recorded on the row.
- A pending message is tried at `next_attempt_at`; a failure doubles the wait (from
  `outbox_backoff_initial_s`, at most an hour); after `outbox_max_attempts` it is dead.
- Webhooks are signed: `Bulwark-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
  "<t>.<body>" under the endpoint's secret>`; receivers check it with `verify_signature`
  (tolerance 300 s, so a captured request cannot be replayed later).
- Webhook targets must be https and must not resolve to a loopback, private or link-local
  address, unless the operator allows it (`webhook_allow_private`): a tenant must not be
  able to make the hub call into its own network.

States: pending ─sent→ sent;  pending ─failed, attempts left→ pending;
        pending ─failed, none left→ dead;  dead ─replay→ pending.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import email.message
import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
import socket
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from hub.clock import now_utc
from hub.config import HubConfig
from hub.errors import InvalidInput
from hub.models import AlertChannel, OutboxMessage
from hub.runtime import Runtime
from hub.services.background import job

log = logging.getLogger("bulwark.hub.outbox")

SIGNATURE_HEADER = "Bulwark-Signature"
SIGNATURE_TOLERANCE_S = 300
MAX_BACKOFF_S = 3600
BATCH = 50  # messages tried per run of the job


class DeliveryFailed(Exception):
    """The far end refused or could not be reached (retried, then dead)."""


# ---- signing ------------------------------------------------------------------------

def sign(secret: str, body: bytes, ts: int) -> str:
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, *, now: float | None = None,
                     tolerance_s: int = SIGNATURE_TOLERANCE_S) -> bool:
    """What a receiver runs: the signature is ours and fresh."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        ts = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now if now is not None else time.time()) - ts) > tolerance_s:
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# ---- targets ------------------------------------------------------------------------

def check_target(config: HubConfig, kind: str, target: str) -> str:
    """The channel's target, checked when it is saved. Raises InvalidInput."""
    if kind == "email":
        if "@" not in target or any(c in target for c in "\r\n ,;") or len(target) > 254:
            raise InvalidInput("an email channel needs one address")
        return target
    parts = urlsplit(target)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("a webhook needs an https:// URL")
    if parts.scheme == "http" and not config.webhook_allow_private:
        raise InvalidInput("a webhook needs an https:// URL")
    _check_host(config, parts.hostname)
    return target


def _check_host(config: HubConfig, host: str) -> None:
    if config.webhook_allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise InvalidInput(f"the webhook's host {host} does not resolve") from exc
    for info in infos:
        addr = ipaddress.ip_address(info[4][0].split("%")[0])
        if not addr.is_global:
            raise InvalidInput(f"the webhook's host {host} is a private or local address ({addr})")


# ---- queueing -----------------------------------------------------------------------

def render(kind: str, subject: str, event: dict[str, Any]) -> dict[str, Any]:
    """The body for the channel's kind: Slack and Discord take their own JSON shapes."""
    incident = event.get("incident", {})
    text = f"{subject}\n{incident.get('summary', '')}".strip()
    if kind == "slack":
        return {"text": text}
    if kind == "discord":
        return {"content": text[:2000]}
    return event


URL_COLUMN = "alert_channel.url"


def mask_url(url: str) -> str:
    """What the panel, the API, the export and the outbox show of a webhook URL: its
    scheme and host (the path and query often hold the endpoint's token)."""
    parts = urlsplit(url)
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{rest}"


def channel_fields(rt: Runtime, kind: str, target: str) -> dict[str, str]:
    """The stored form of a channel's checked target: an address as it is, a URL sealed
    in `url` with its masked form in `target`."""
    if kind == "email":
        return {"target": target, "url": ""}
    return {"target": mask_url(target), "url": rt.sealer.seal(URL_COLUMN, target)}


def channel_url(rt: Runtime, channel: AlertChannel) -> str:
    """The webhook URL to post to. Raises SecretUnreadable (wrong keyring, altered value)."""
    return rt.sealer.open(URL_COLUMN, channel.url) or ""


async def enqueue(channel: AlertChannel, subject: str, event: dict[str, Any], *,
                  now: dt.datetime | None = None) -> OutboxMessage:
    now = now or now_utc()
    return await OutboxMessage.create(
        tenant_id=channel.tenant_id, channel_id=channel.id, kind=channel.kind, target=channel.target,
        subject=subject[:300], body=render(channel.kind, subject, event), next_attempt_at=now, created_at=now)


async def email_person(to: str, subject: str, text: str) -> OutboxMessage:
    """A mail to one person's own address (a reset link, an email change notice), outside
    any alert channel: delivered and retried like every outbox message."""
    at = now_utc()
    return await OutboxMessage.create(kind="email", target=to, subject=subject, body={"text": text},
                                      next_attempt_at=at, created_at=at)


async def replay(message: OutboxMessage, *, now: dt.datetime | None = None) -> OutboxMessage:
    """A dead letter, tried again from the start."""
    if message.state != "dead":
        raise InvalidInput(f"only a dead message can be replayed (this one is {message.state})")
    message.state, message.attempts, message.last_error = "pending", 0, ""
    message.next_attempt_at = now or now_utc()
    await message.save(update_fields=["state", "attempts", "last_error", "next_attempt_at"])
    return message


def message_json(m: OutboxMessage) -> dict[str, Any]:
    return {"id": str(m.id), "kind": m.kind, "target": m.target, "subject": m.subject, "state": m.state,
            "attempts": m.attempts, "last_error": m.last_error, "created_at": m.created_at.isoformat(),
            "next_attempt_at": m.next_attempt_at.isoformat(),
            "sent_at": m.sent_at.isoformat() if m.sent_at else None}


# ---- delivery -----------------------------------------------------------------------

@job("outbox.deliver", every_s=5)
async def deliver_due(rt: Runtime, *, now: dt.datetime | None = None) -> int:
    """Try every message that is due. Returns how many were sent."""
    now = now or now_utc()
    sent = 0
    due = await OutboxMessage.filter(state="pending", next_attempt_at__lte=now).order_by("next_attempt_at").limit(BATCH)
    for message in due:
        try:
            await deliver(rt, message)
        except DeliveryFailed as exc:
            _failed(rt.config, message, str(exc), now)
            await message.save(update_fields=["state", "attempts", "last_error", "next_attempt_at"])
            continue
        message.state, message.sent_at, message.attempts = "sent", now, message.attempts + 1
        if "text" in message.body:  # it may hold a secret link: kept only until sent
            message.body = {"text": "(sent; the text is not kept)"}
        await message.save(update_fields=["state", "sent_at", "attempts", "body"])
        sent += 1
    return sent


def _failed(config: HubConfig, message: OutboxMessage, error: str, now: dt.datetime) -> None:
    message.attempts += 1
    message.last_error = error[:500]
    if message.attempts >= config.outbox_max_attempts:
        message.state = "dead"
        log.warning("outbox: message %s is dead after %d attempts: %s", message.id, message.attempts, error)
        return
    wait = min(config.outbox_backoff_initial_s * 2 ** (message.attempts - 1), MAX_BACKOFF_S)
    message.next_attempt_at = now + dt.timedelta(seconds=wait)


async def deliver(rt: Runtime, message: OutboxMessage) -> None:
    """Send one message. Raises DeliveryFailed."""
    config = rt.config
    if message.kind == "email":
        await asyncio.to_thread(_send_email, config, message)
        return
    body = json.dumps(message.body, separators=(",", ":"), sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "bulwark-hub"}
    channel = await AlertChannel.get_or_none(id=message.channel_id)
    if channel is None:
        raise DeliveryFailed("the channel was deleted")
    if message.kind == "webhook":
        headers[SIGNATURE_HEADER] = sign(rt.sealer.open("alert_channel.secret", channel.secret) or "", body, int(time.time()))
    url = channel_url(rt, channel)
    host = urlsplit(url).hostname or ""
    try:
        await asyncio.to_thread(_check_host, config, host)  # again: DNS may have changed
    except InvalidInput as exc:
        raise DeliveryFailed(exc.message) from None
    try:
        async with httpx.AsyncClient(timeout=config.webhook_timeout_s, follow_redirects=False) as client:
            resp = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {str(exc).replace(url, message.target)}") from None
    if not 200 <= resp.status_code < 300:
        raise DeliveryFailed(f"the endpoint answered {resp.status_code}")


def _send_email(config: HubConfig, message: OutboxMessage) -> None:
    if not config.smtp_host:
        raise DeliveryFailed("no SMTP server configured (smtp_host)")
    mail = email.message.EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = config.mail_from, message.target, message.subject
    mail.set_content(_email_text(message))
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.webhook_timeout_s) as smtp:
            if config.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=config.smtp_cafile or None))
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            smtp.send_message(mail)
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryFailed(f"SMTP: {exc}") from None


def _email_text(message: OutboxMessage) -> str:
    if "text" in message.body:  # a message to a person (a password reset), written whole
        return str(message.body["text"])
    incident = message.body.get("incident", {})
    lines = [message.subject, "", incident.get("summary", "")]
    for key in ("kind", "subject", "state", "opened_at", "resolved_at"):
        if incident.get(key):
            lines.append(f"{key}: {incident[key]}")
    return "\n".join(lines) + "\n"
