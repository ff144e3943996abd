"""Repair ip_entry's indexes on SQLite files made before 0001 named the column.

0001 used to index the field name "ip_list", which PostgreSQL refuses and SQLite takes as
a string literal, so those three indexes never served a lookup by list. 0001 now indexes
"ip_list_id"; this drops the old literal indexes where they exist and creates the right
ones where they are missing. On a fresh database (either backend) it changes nothing.
"""
from tortoise import migrations
from tortoise.migrations import operations as ops

# (index 0001 made before the fix, index it makes now, columns)
_INDEXES = [
    ("idx_ip_entry_ip_list_4e6e1d", "idx_ip_entry_ip_list_7e49ee", "ip_list_id, network"),
    ("idx_ip_entry_ip_list_206ade", "idx_ip_entry_ip_list_414d05", "ip_list_id, added_rev"),
    ("idx_ip_entry_ip_list_31eec9", "idx_ip_entry_ip_list_112351", "ip_list_id, removed_rev"),
]


class Migration(migrations.Migration):
    dependencies = [("hub", "0001_initial")]

    operations = [
        ops.RunSQL([f'DROP INDEX IF EXISTS "{old}"' for old, _, _ in _INDEXES]
                   + [f'CREATE INDEX IF NOT EXISTS "{new}" ON "ip_entry" ({cols})' for _, new, cols in _INDEXES]),
    ]
