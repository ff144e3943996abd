"""The signed-in person's own account: sessions, and the password reset."""
from __future__ import annotations

import datetime as dt

from pydantic import Field

from hub.api_schemas.common import Strict


class SessionOut(Strict):
    id: str = Field(description="the session's handle (not its cookie)")
    address: str
    user_agent: str
    created_at: dt.datetime | None
    expires_at: dt.datetime
    current: bool = Field(description="the session this request came with")


class SessionsOut(Strict):
    sessions: list[SessionOut]


class EndedOut(Strict):
    ended: int


class ResetIn(Strict):
    email: str = Field(max_length=320)


class ResetQueuedOut(Strict):
    queued: bool = Field(description="always true: the answer never says whether the account exists")


class ResetConfirmIn(Strict):
    token: str = Field(max_length=200, description="the secret from the reset link")
    new_password: str = Field(min_length=12, max_length=1024)


class ResetDoneOut(Strict):
    changed: bool


class EmailChangeIn(Strict):
    new_email: str = Field(max_length=320, description="the address to change to; a link is sent there")


class EmailChangeQueuedOut(Strict):
    queued: bool
    new_email: str = Field(description="normalised; the change happens when its link is used")
    expires_in_s: int


class EmailConfirmIn(Strict):
    token: str = Field(max_length=200, description="the secret from the link sent to the new address")


class EmailChangedOut(Strict):
    email: str
    other_sessions_ended: bool
