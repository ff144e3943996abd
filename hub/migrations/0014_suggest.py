"""Shared assistant caps (a usage row per tenant, kind and window) and the agents' drop
aggregates (protocols, destination ports, size buckets: rules_dsl.traffic)."""
from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [("hub", "0013_sealed_urls_email_change")]

    initial = False

    operations = [
        ops.CreateModel(
            name='AssistantUsage',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant_id', fields.UUIDField()),
                ('kind', fields.CharField(max_length=8)),
                ('window_start', fields.BigIntField()),
                ('used', fields.BigIntField(default=0)),
            ],
            options={'table': 'assistant_usage', 'app': 'hub', 'unique_together': (('tenant_id', 'kind', 'window_start'),), 'pk_attr': 'id', 'table_description': "One tenant's assistant use in one fixed window: requests per clock hour, tokens per UTC"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrafficAggregate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant_id', fields.UUIDField()),
                ('agent_id', fields.UUIDField()),
                ('ts', fields.BigIntField()),
                ('kind', fields.CharField(max_length=8)),
                ('proto', fields.SmallIntField()),
                ('value', fields.IntField()),
                ('packets', fields.BigIntField(default=0)),
            ],
            options={'table': 'traffic_aggregate', 'app': 'hub', 'indexes': [Index(fields=['tenant_id', 'ts']), Index(fields=['agent_id', 'ts'])], 'pk_attr': 'id', 'table_description': 'What agents dropped per protocol, destination port and size bucket (rules_dsl.traffic):'},
            bases=['Model'],
        ),
    ]
