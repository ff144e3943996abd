"""Privacy promises kept (issue 17, part 2): alert webhook URLs sealed at rest, and the
self-service change of email.

A webhook URL often carries the endpoint's token (Slack's and Discord's do), so it moves
from `alert_channel.target` (which keeps only its masked form, scheme://host/…) into
`alert_channel.url`; queued messages keep only the masked form too (delivery opens the
channel's URL). A migration sees the database, not the keyring outside it, so the URLs
moved here are sealed by the hub as it starts, and by `bulwark hub migrate`
(hub.services.sealing.seal_legacy), as 0012's secrets were.
"""
from urllib.parse import urlsplit

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


def _mask(url: str) -> str:  # hub.services.outbox.mask_url, frozen as of this migration
    parts = urlsplit(url)
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    port = f":{_port(parts)}" if _port(parts) else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{rest}"


def _port(parts):
    try:
        return parts.port
    except ValueError:  # a port out of range: checked URLs have none, but keep the row
        return None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def _move_urls(apps, editor) -> None:
    client = editor.client
    for row in await client.execute_query_dict("SELECT id, target FROM alert_channel WHERE kind <> 'email'"):
        if row["target"].startswith(("http://", "https://")):
            await client.execute_script(
                f"UPDATE alert_channel SET url = {_quote(row['target'])}, target = {_quote(_mask(row['target']))} "
                f"WHERE id = {_quote(str(row['id']))}")
    for row in await client.execute_query_dict("SELECT id, target FROM outbox_message WHERE kind <> 'email'"):
        if row["target"].startswith(("http://", "https://")):
            await client.execute_script(f"UPDATE outbox_message SET target = {_quote(_mask(row['target']))} "
                                        f"WHERE id = {_quote(str(row['id']))}")


class Migration(migrations.Migration):
    dependencies = [("hub", "0012_privacy")]

    initial = False

    operations = [
        ops.AddField(
            model_name="AlertChannel",
            name="url",
            field=fields.CharField(default="", max_length=1200),
        ),
        ops.RunPython(_move_urls),
        ops.CreateModel(
            name="EmailChange",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("user", fields.ForeignKeyField("hub.User", source_field="user_id", db_constraint=True,
                                                to_field="id", related_name="email_changes",
                                                on_delete=fields.CASCADE)),
                ("new_email", fields.CharField(max_length=320)),
                ("old_email", fields.CharField(default="", max_length=320)),
                ("token_hash", fields.CharField(max_length=64, unique=True)),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={"table": "email_change", "app": "hub", "pk_attr": "id",
                     "table_description": "A change of a user's email, pending until the link sent to the new address is used"},
            bases=["Model"],
        ),
    ]
