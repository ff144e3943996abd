"""What the panel's account and tenant pages need: join tokens good for several servers
(and revocable), revocable invitations, single-use password resets, and the browser a
session was opened from (so the sessions list says which is which)."""
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("hub", "0005_canonical_hosts")]

    initial = False

    operations = [
        ops.AddField(model_name="JoinToken", name="max_uses", field=fields.IntField(default=1)),
        ops.AddField(model_name="JoinToken", name="uses", field=fields.IntField(default=0)),
        ops.AddField(model_name="JoinToken", name="revoked_at",
                     field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
        ops.AddField(model_name="Invitation", name="revoked_at",
                     field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
        ops.AddField(model_name="Session", name="user_agent", field=fields.CharField(default="", max_length=200)),
        ops.RunSQL(["UPDATE join_token SET uses = 1 WHERE used_at IS NOT NULL"]),
        ops.CreateModel(
            name="PasswordReset",
            fields=[
                ("id", fields.IntField(primary_key=True, unique=True, db_index=True)),
                ("user", fields.ForeignKeyField("hub.User", source_field="user_id", db_constraint=True, to_field="id",
                                                related_name="password_resets", on_delete=OnDelete.CASCADE)),
                ("token_hash", fields.CharField(max_length=64, unique=True)),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "password_reset", "app": "hub", "pk_attr": "id",
                     "table_description": "A single-use password reset: the link carries the secret, "
                                          "its sha256 is kept here."},
            bases=["Model"],
        ),
    ]
