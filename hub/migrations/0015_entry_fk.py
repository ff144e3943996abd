"""ip_entry loses its foreign key to ip_list on PostgreSQL: the key was checked once per
inserted row, which doubled a 1,000,000-entry import (INSERT ... SELECT of 1M rows:
14.9 s with it, 7.6 s without). Nothing cascades to ip_entry any more: whatever deletes
lists deletes their entries in the same transaction (hub.services.lists.delete_entries).

SQLite keeps its key (declared with ON DELETE CASCADE, which now finds nothing left to
delete). Dropping it there means copying the whole table, a pause of seconds on a large
list at upgrade, and Tortoise's rebuild (what AlterField runs on SQLite) would drop the
table's indexes and write the key back anyway. Its check is a primary-key lookup in the
same file, a small share of SQLite's import. So AlterField here only changes the
migration state (the model's `db_constraint=False`), and RunPython changes PostgreSQL.
"""
from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

_FIND = ("SELECT conname FROM pg_constraint WHERE contype = 'f' "
         "AND conrelid = 'ip_entry'::regclass AND confrelid = 'ip_list'::regclass")


class _StateOnly(ops.AlterField):
    """The model's new form, without the schema editor's rebuild (see above)."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None


def _on_postgres(editor) -> bool:
    return editor.DIALECT == "postgres"


async def _drop_key(apps, editor) -> None:
    if _on_postgres(editor):
        for row in await editor.client.execute_query_dict(_FIND):
            await editor.client.execute_script(f'ALTER TABLE ip_entry DROP CONSTRAINT "{row["conname"]}"')


async def _restore_key(apps, editor) -> None:
    if _on_postgres(editor) and not await editor.client.execute_query_dict(_FIND):
        await editor.client.execute_script(
            "DELETE FROM ip_entry WHERE ip_list_id NOT IN (SELECT id FROM ip_list);"
            "ALTER TABLE ip_entry ADD CONSTRAINT fk_ip_entr_ip_list FOREIGN KEY (ip_list_id) "
            "REFERENCES ip_list (id) ON DELETE CASCADE")


class Migration(migrations.Migration):
    dependencies = [("hub", "0014_suggest")]

    initial = False

    operations = [
        _StateOnly(
            model_name="IpEntry",
            name="ip_list",
            field=fields.ForeignKeyField("hub.IpList", source_field="ip_list_id", db_constraint=False, to_field="id",
                                         related_name="entries", on_delete=OnDelete.NO_ACTION),
        ),
        ops.RunPython(_drop_key, _restore_key),
    ]
