from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('hub', '0003_alerts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BillingAccount',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('tenant', fields.OneToOneField('hub.Tenant', source_field='tenant_id', db_constraint=True, to_field='id', related_name='billing', on_delete=OnDelete.CASCADE)),
                ('customer_id', fields.CharField(null=True, max_length=100)),
                ('subscription_id', fields.CharField(null=True, max_length=100)),
                ('item_id', fields.CharField(null=True, max_length=100)),
                ('state', fields.CharField(default='none', max_length=16)),
                ('trial_used', fields.BooleanField(default=False)),
                ('quantity', fields.IntField(default=0)),
                ('quantity_seq', fields.IntField(default=0)),
                ('past_due_since', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'billing_account', 'app': 'hub', 'pk_attr': 'id', 'table_description': 'One per tenant that ever had an agent. Kept minimal: Stripe holds the rest.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StripeEvent',
            fields=[
                ('id', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=100)),
                ('type', fields.CharField(max_length=100)),
                ('received_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('handled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'stripe_event', 'app': 'hub', 'pk_attr': 'id', 'table_description': 'A webhook event: stored first (its id is unique), handled once.'},
            bases=['Model'],
        ),
    ]
