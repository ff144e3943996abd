"""Store single hosts in the canonical text form (rules_dsl.addresses): `192.0.2.1`,
not `192.0.2.1/32`; `2001:db8::1`, not `2001:db8::1/128`.

Rows written before were `str(ip_network(...))`, which always carries the length; the
API now accepts either form and stores the bare host, so old rows are rewritten once
(including tombstones, so deltas since an old revision name the same entries). An
IPv6 `/32` is a real prefix and is left alone.
"""
from tortoise import migrations
from tortoise.migrations import operations as ops

STATEMENTS = [
    "UPDATE ip_entry SET network = substr(network, 1, length(network) - 3) "
    "WHERE network LIKE '%/32' AND network NOT LIKE '%:%'",
    "UPDATE ip_entry SET network = substr(network, 1, length(network) - 4) "
    "WHERE network LIKE '%/128' AND network LIKE '%:%'",
]


class Migration(migrations.Migration):
    dependencies = [("hub", "0004_billing")]

    operations = [ops.RunSQL(STATEMENTS)]
