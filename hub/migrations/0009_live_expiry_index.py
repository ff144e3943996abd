"""An index of the live entries that expire, for the expiry sweep (every 30 s).

Without it the sweep's `removed_rev IS NULL AND expires_at <= now` read every live row:
a fifth to half a second on SQLite with a 1,000,000-entry list, during which a
one-entry change waited for the database (the tail of its latency). Partial (live rows
with an expiry only), so lists without expiries cost it nothing.
"""
from tortoise import migrations
from tortoise.migrations import operations as ops

STATEMENTS = [
    "CREATE INDEX IF NOT EXISTS idx_ip_entry_live_expiry ON ip_entry (expires_at) "
    "WHERE removed_rev IS NULL AND expires_at IS NOT NULL",
]


class Migration(migrations.Migration):
    dependencies = [("hub", "0008_canonical_top_sources")]

    operations = [ops.RunSQL(STATEMENTS, reverse_sql=["DROP INDEX IF EXISTS idx_ip_entry_live_expiry"])]
