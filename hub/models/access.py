"""Who may do what: users, tenants, memberships, sessions, API tokens."""
from __future__ import annotations

import uuid

from tortoise import fields
from tortoise.models import Model

ROLES = ("viewer", "operator", "admin", "owner")
TOKEN_SCOPES = ("read", "write", "deploy", "billing")


class Tenant(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    name = fields.CharField(max_length=200)
    suspended = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Closed by its owner: nobody reaches it any more, and hub.services.erasure deletes it.
    closed_at = fields.DatetimeField(null=True)

    TENANT_PATH = "id"

    class Meta:
        table = "tenant"


class User(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    email = fields.CharField(max_length=320, unique=True)
    password_hash = fields.CharField(max_length=200)
    is_platform_admin = fields.BooleanField(default=False)
    # Sealed (hub.services.sealing): envelope-encrypted, the key outside the database.
    totp_secret = fields.CharField(max_length=400, null=True)
    totp_pending_secret = fields.CharField(max_length=400, null=True)
    # The last TOTP time step accepted: a code is good once per step.
    totp_last_step = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Closed by its owner: no sign-in any more, and hub.services.erasure deletes it.
    closed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "user"


class RecoveryCode(Model):
    id = fields.IntField(primary_key=True)
    user = fields.ForeignKeyField("hub.User", related_name="recovery_codes", on_delete=fields.CASCADE)
    code_hash = fields.CharField(max_length=64)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "recovery_code"


class Membership(Model):
    id = fields.IntField(primary_key=True)
    user = fields.ForeignKeyField("hub.User", related_name="memberships", on_delete=fields.CASCADE)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="memberships", on_delete=fields.CASCADE)
    role = fields.CharField(max_length=16)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "membership"
        unique_together = (("user", "tenant"),)


class Invitation(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="invitations", on_delete=fields.CASCADE)
    email = fields.CharField(max_length=320)
    role = fields.CharField(max_length=16)
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    accepted_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "invitation"


class PasswordReset(Model):
    """A single-use password reset: the link carries the secret, its sha256 is kept here."""

    id = fields.IntField(primary_key=True)
    user = fields.ForeignKeyField("hub.User", related_name="password_resets", on_delete=fields.CASCADE)
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "password_reset"


class EmailChange(Model):
    """A change of a user's email, pending until the link sent to the new address is used
    (by the same signed-in user), whose sha256 is kept. A used row stays with `old_email`
    so that erasing the account also pseudonymises what was done under the old address."""

    id = fields.IntField(primary_key=True)
    user = fields.ForeignKeyField("hub.User", related_name="email_changes", on_delete=fields.CASCADE)
    new_email = fields.CharField(max_length=320)
    old_email = fields.CharField(max_length=320, default="")
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "email_change"


class Session(Model):
    """A browser session. The cookie carries the id, its sha256 is the key here."""

    id_hash = fields.CharField(max_length=64, primary_key=True)
    user = fields.ForeignKeyField("hub.User", related_name="sessions", on_delete=fields.CASCADE)
    mfa_ok = fields.BooleanField(default=False)
    csrf_token = fields.CharField(max_length=64)
    address = fields.CharField(max_length=64, default="")
    user_agent = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "session"


class LoginFailure(Model):
    """One failed login, keyed by account and by address, counted for throttling."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=400, db_index=True)
    at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "login_failure"


class ApiToken(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = fields.ForeignKeyField("hub.Tenant", related_name="api_tokens", on_delete=fields.CASCADE)
    name = fields.CharField(max_length=200)
    secret_hash = fields.CharField(max_length=64)
    scopes = fields.JSONField(default=list)
    created_by = fields.ForeignKeyField("hub.User", related_name="api_tokens", null=True, on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)

    TENANT_PATH = "tenant_id"

    class Meta:
        table = "api_token"
