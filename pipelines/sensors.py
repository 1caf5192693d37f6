"""The landing sensor: new domain folders register themselves and train; changed ones retrain."""

import json
import time

import dagster as dg

from assets.corpora.landing_scan import plan_landing, scan_domain
from assets.partitions import domain_partitions
from pipelines.jobs import base_model_job, domain_finetune_job
from resources.base_model_source import BaseModelSource
from resources.landing import LandingZone
from resources.lineage import instance_latest_record


@dg.sensor(
    jobs=[domain_finetune_job, base_model_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the landing root: a new domain folder is registered as a partition and "
    "its chain runs; new or changed files retrain that domain only; idle ticks launch nothing.",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, landing: LandingZone, base_model_source: BaseModelSource) -> dg.SensorResult:
    started = time.perf_counter()
    cursor = json.loads(context.cursor) if context.cursor else {}
    registered = set(context.instance.get_dynamic_partitions(domain_partitions.name))
    valid, invalid = landing.domain_folders()
    now = time.time()
    scans = [scan_domain(d, landing.domain_dir(d), landing.settle_seconds, now, cursor.get(d)) for d in valid]
    ingested = {d: _ingested_fingerprint(context, d) for d in valid if d in registered and d not in cursor}
    plan = plan_landing(scans, invalid, cursor, registered, ingested)

    runs = [
        dg.RunRequest(run_key=key, job_name=domain_finetune_job.name, partition_key=domain,
                      tags={"loraline/trigger": "landing_zone_sensor"})
        for domain, key in plan.runs.items()
    ]
    if runs and context.instance.get_latest_materialization_event(dg.AssetKey("base_model")) is None:
        # Domains need a base model: build it first and look at the domains again next tick.
        spec = base_model_source.parsed().display
        runs, plan_cursor = [dg.RunRequest(run_key=f"base_model:{spec}", job_name=base_model_job.name)], cursor
        context.log.info(f"base_model is not materialized yet: requesting it ({spec}); domains wait for it")
    else:
        plan_cursor = plan.cursor
    for note in plan.notes:
        context.log.info(note)
    context.log.info(f"tick: {len(valid)} domains scanned, {len(runs)} run(s) requested in {time.perf_counter() - started:.3f}s")
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[domain_partitions.build_add_request(plan.new_domains)] if plan.new_domains else [],
        cursor=json.dumps(plan_cursor, separators=(",", ":"), sort_keys=True),
    )


def _ingested_fingerprint(context: dg.SensorEvaluationContext, domain: str) -> str | None:
    record = instance_latest_record(context.instance, "raw_corpus", domain)
    value = record.asset_materialization.metadata.get("landing_fingerprint") if record else None
    return value.value if value is not None else None
