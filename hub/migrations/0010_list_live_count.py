"""Each list keeps its live entry count (`ip_list.live_count`), kept by every change in
its own transaction: a one-entry change to a 1,000,000-entry list counted the list's
live rows to enforce `list_max_entries`, a fifth of a second on SQLite (more on
PostgreSQL) in front of every change reaching the agents. Filled in once here."""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops

BACKFILL = [
    "UPDATE ip_list SET live_count = (SELECT COUNT(*) FROM ip_entry "
    "WHERE ip_entry.ip_list_id = ip_list.id AND ip_entry.removed_rev IS NULL)",
]


class Migration(migrations.Migration):
    dependencies = [("hub", "0009_live_expiry_index")]

    initial = False

    operations = [
        ops.AddField(model_name="IpList", name="live_count", field=fields.BigIntField(default=0)),
        ops.RunSQL(BACKFILL, reverse_sql=[]),
    ]
