"""Top dropped sources in the canonical text form (rules_dsl.addresses), as lists have
been since 0005: `203.0.113.9`, not `203.0.113.9/32`.

The agent protocol stored `str(ip_network(source))`, which always carries the length;
it now stores the bare host, so old rows are rewritten once and a source's packets from
before and after add up in one row of the top list.
"""
from tortoise import migrations
from tortoise.migrations import operations as ops

STATEMENTS = [
    "UPDATE top_source SET source = substr(source, 1, length(source) - 3) "
    "WHERE source LIKE '%/32' AND source NOT LIKE '%:%'",
    "UPDATE top_source SET source = substr(source, 1, length(source) - 4) "
    "WHERE source LIKE '%/128' AND source LIKE '%:%'",
]


class Migration(migrations.Migration):
    dependencies = [("hub", "0007_billing_customer")]

    operations = [ops.RunSQL(STATEMENTS)]
