"""Billing: what the panel's banners and billing page show without asking Stripe (the
trial's end, the period's end, a cancellation at period end, the card on file)."""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("hub", "0006_account_pages")]

    operations = [
        ops.AddField(model_name="BillingAccount", name="trial_end", field=fields.DatetimeField(null=True)),
        ops.AddField(model_name="BillingAccount", name="period_end", field=fields.DatetimeField(null=True)),
        ops.AddField(model_name="BillingAccount", name="cancel_at", field=fields.DatetimeField(null=True)),
        ops.AddField(model_name="BillingAccount", name="card", field=fields.CharField(max_length=40, null=True)),
    ]
