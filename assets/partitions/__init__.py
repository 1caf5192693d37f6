"""The one partitioning shared by every per-domain asset: a dynamic set of domain keys."""

import dagster as dg

domain_partitions = dg.DynamicPartitionsDefinition(name="domain")
