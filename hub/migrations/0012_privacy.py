"""Privacy (issue 17): closed tenants and accounts, erasure requests and billing records, the
audit chain's format 2 (keyed hashes of its personal fields), wider columns for sealed secrets.

The plaintext secrets already stored are sealed by the hub at start (hub.services.sealing):
a migration sees the database, not the keyring that lives outside it.
"""
from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [("hub", "0011_marketplace_library")]

    initial = False

    operations = [
        ops.CreateModel(
            name='BillingRecord',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tenant_id', fields.UUIDField(db_index=True)),
                ('customer_id', fields.CharField(null=True, max_length=100)),
                ('subscription_id', fields.CharField(null=True, max_length=100)),
                ('last_state', fields.CharField(max_length=16)),
                ('last_quantity', fields.IntField(default=0)),
                ('closed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('keep_until', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'billing_record', 'app': 'hub', 'pk_attr': 'id', 'table_description': "What remains of a closed tenant's billing: the ids that name its invoices at Stripe,"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ErasureRequest',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=8)),
                ('subject_id', fields.UUIDField(db_index=True)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('state', fields.CharField(default='scheduled', max_length=16)),
                ('steps_done', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('report', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'erasure_request', 'app': 'hub', 'unique_together': (('kind', 'subject_id'),), 'pk_attr': 'id', 'table_description': 'One closed account or tenant to erase, its progress (steps done), and its report.'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='AlertChannel',
            name='secret',
            field=fields.CharField(default='', max_length=400),
        ),
        ops.AddField(
            model_name='AuditEntry',
            name='actor_hash',
            field=fields.CharField(default='', max_length=64),
        ),
        ops.AddField(
            model_name='AuditEntry',
            name='address_hash',
            field=fields.CharField(default='', max_length=64),
        ),
        ops.AddField(
            model_name='AuditEntry',
            name='fmt',
            field=fields.SmallIntField(default=1),
        ),
        ops.AddField(
            model_name='AuditEntry',
            name='target_hash',
            field=fields.CharField(default='', max_length=64),
        ),
        ops.AddField(
            model_name='Tenant',
            name='closed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AlterField(
            model_name='User',
            name='totp_pending_secret',
            field=fields.CharField(null=True, max_length=400),
        ),
        ops.AlterField(
            model_name='User',
            name='totp_secret',
            field=fields.CharField(null=True, max_length=400),
        ),
        ops.AddField(
            model_name='User',
            name='closed_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
