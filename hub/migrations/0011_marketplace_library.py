"""The marketplace's templates and their published versions, and the library's entries."""
from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [("hub", "0010_list_live_count")]

    initial = False

    operations = [
        ops.CreateModel(
            name='LibraryEntry',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.ForeignKeyField('hub.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='library', on_delete=OnDelete.CASCADE)),
                ('policy', fields.OneToOneField('hub.Policy', source_field='policy_id', db_constraint=True, to_field='id', related_name='library_entry', on_delete=OnDelete.CASCADE)),
                ('description', fields.CharField(default='', max_length=500)),
                ('tags', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('template_slug', fields.CharField(null=True, max_length=63)),
                ('template_version', fields.IntField(null=True)),
                ('parameters', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('cloned_from', fields.UUIDField(null=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'library_entry', 'app': 'hub', 'pk_attr': 'id', 'table_description': 'What the library adds to a policy: a description, tags, and the template version'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Template',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('slug', fields.CharField(unique=True, max_length=63)),
                ('title', fields.CharField(max_length=80)),
                ('summary', fields.CharField(max_length=300)),
                ('tags', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('latest_version', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'market_template', 'app': 'hub', 'pk_attr': 'id', 'table_description': 'A marketplace template: its versions are immutable once published.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TemplateVersion',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('template', fields.ForeignKeyField('hub.Template', source_field='template_id', db_constraint=True, to_field='id', related_name='versions', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField()),
                ('source', fields.TextField(unique=False)),
                ('report', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('published_by', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'market_template_version', 'app': 'hub', 'unique_together': (('template', 'version'),), 'pk_attr': 'id', 'table_description': 'One published version: the template file as published and what the pipeline ran.'},
            bases=['Model'],
        ),
    ]
