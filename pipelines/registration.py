"""Registering domains as partitions: the only door through which a domain key enters Dagster."""

import dagster as dg

from assets.common.domains import validate_domain_key
from assets.partitions import domain_partitions


def register_domains(instance: dg.DagsterInstance, domains: list[str]) -> list[str]:
    """Validate every key first (refusing all on one bad key), then add the new ones; returns those added."""
    keys = [validate_domain_key(domain) for domain in domains]
    known = set(instance.get_dynamic_partitions(domain_partitions.name))
    new = [key for key in dict.fromkeys(keys) if key not in known]
    if new:
        instance.add_dynamic_partitions(domain_partitions.name, new)
    return new
