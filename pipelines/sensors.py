"""The landing sensor: new domain folders register themselves and train; changed ones retrain;
failed runs are retried a bounded number of times (decisions in assets/corpora/landing_scan.py)."""

import json
import time
from pathlib import Path

import dagster as dg

from assets.common.hashing import json_fingerprint
from assets.corpora.landing_digests import DigestCache, HashBudget
from assets.corpora.landing_scan import KEY_CHARS, RunHistory, needs_history, plan_landing, read_cursor, run_key, scan_landing
from assets.partitions import domain_partitions
from pipelines.jobs import base_model_job, domain_finetune_job
from resources.base_model_source import BaseModelSource
from resources.landing import LandingZone
from resources.lineage import instance_latest_record

TRIGGER_TAG, FINGERPRINT_TAG, ATTEMPT_TAG = "loraline/trigger", "loraline/landing_fingerprint", "loraline/attempt"
BASE_SPEC_TAG = "loraline/base_model_spec"
PARTITION_TAG = "dagster/partition"
SENSOR = "landing_zone_sensor"
FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
# Anything not finished counts as in flight (queued, starting, running, canceling, suspended...):
# launching the same data again next to it is what must never happen.
UNFINISHED = [status for status in dg.DagsterRunStatus if status not in FINISHED]
ATTEMPT_LOOKBACK = 50  # newest runs on the same data searched for the highest attempt number


@dg.sensor(
    jobs=[domain_finetune_job, base_model_job],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the landing root: a new domain folder is registered as a partition and "
    "its chain runs; new or changed files retrain that domain only; a failed run is retried a few "
    "times; idle ticks launch nothing.",
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, landing: LandingZone, base_model_source: BaseModelSource) -> dg.SensorResult:
    started = time.perf_counter()
    cursor = read_cursor(json.loads(context.cursor) if context.cursor else {})
    registered = set(context.instance.get_dynamic_partitions(domain_partitions.name))
    root, folders = landing.root_path(), landing.scan_folders()
    cache = DigestCache(_digest_cache_dir(context.instance, root))
    budget = HashBudget(landing.max_hash_bytes_per_tick)
    scans = scan_landing({d: root / d for d in folders.valid}, landing.settle_seconds, time.time(), cache, budget)
    history = {s.domain: _history(context.instance, s.domain, s.fingerprint, landing.max_run_retries)
               for s in scans if needs_history(s, cursor.get(s.domain))}
    plan = plan_landing(scans, history, cursor, registered, landing.max_run_retries, folders.invalid, folders.refused)

    runs = [
        dg.RunRequest(run_key=run_key(domain, fingerprint, attempt), job_name=domain_finetune_job.name, partition_key=domain,
                      tags={TRIGGER_TAG: SENSOR, FINGERPRINT_TAG: fingerprint, ATTEMPT_TAG: str(attempt)})
        for domain, (fingerprint, attempt) in plan.runs.items()
    ]
    notes, warnings = [*plan.notes], [*plan.warnings, *cache.errors]
    if runs and context.instance.get_latest_materialization_event(dg.AssetKey("base_model")) is None:
        # Domains need a base model: build it first. Their cursor entries stay pending, so the
        # domains are looked at again once it is there.
        runs, line, loud = _base_model_request(context.instance, base_model_source.parsed().display, landing.max_run_retries)
        (warnings if loud else notes).append(line)
    for line in notes:
        context.log.info(line)
    for line in warnings:
        context.log.warning(line)
    context.log.info(f"tick: {len(scans)} domains scanned, {budget.spent} bytes hashed, {len(runs)} run(s) "
                     f"requested in {time.perf_counter() - started:.3f}s")
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[domain_partitions.build_add_request(plan.new_domains)] if plan.new_domains else [],
        cursor=json.dumps(plan.cursor, separators=(",", ":"), sort_keys=True),
    )


def _history(instance: dg.DagsterInstance, domain: str, fingerprint: str, max_retries: int) -> RunHistory:
    in_flight = instance.get_runs(dg.RunsFilter(tags={PARTITION_TAG: domain}, statuses=UNFINISHED), limit=1)
    # Newest first; enough of them to count max_retries + 1 failures in a row.
    latest = instance.get_runs(dg.RunsFilter(job_name=domain_finetune_job.name, tags={PARTITION_TAG: domain, TRIGGER_TAG: SENSOR}),
                               limit=max_retries + 2)
    streak = []
    for run in latest:
        if run.tags.get(FINGERPRINT_TAG) != fingerprint:
            break
        streak.append(run.status == dg.DagsterRunStatus.SUCCESS)
    same_data = instance.get_runs(dg.RunsFilter(job_name=domain_finetune_job.name, tags={PARTITION_TAG: domain, FINGERPRINT_TAG: fingerprint}),
                                  limit=ATTEMPT_LOOKBACK)
    record = instance_latest_record(instance, "raw_corpus", domain)
    ingested = record.asset_materialization.metadata.get("landing_fingerprint") if record else None
    return RunHistory([run.run_id for run in in_flight], streak, _attempt(same_data),
                      ingested.value if ingested is not None else None)


def _base_model_request(instance: dg.DagsterInstance, spec: str, max_retries: int) -> tuple[list[dg.RunRequest], str, bool]:
    """The base_model run to request (none while one is in flight or after too many failures),
    the line for the log, and whether it needs a person."""
    if in_flight := instance.get_runs(dg.RunsFilter(job_name=base_model_job.name, statuses=UNFINISHED), limit=1):
        return [], f"base_model is being built (run {in_flight[0].run_id}); domains wait for it", False
    tag = json_fingerprint(spec)[:KEY_CHARS]
    latest = instance.get_runs(dg.RunsFilter(job_name=base_model_job.name, tags={BASE_SPEC_TAG: tag}), limit=max_retries + 2)
    failures = next((i for i, run in enumerate(latest) if run.status == dg.DagsterRunStatus.SUCCESS), len(latest))
    if failures > max_retries:
        return [], (f"base_model ({spec}): gave up after {failures} failed runs (1 run + {max_retries} automatic retries); "
                    "every domain waits. Fix the cause (see those runs), then launch base_model_job by hand"), True
    last = _attempt(instance.get_runs(dg.RunsFilter(job_name=base_model_job.name, tags={BASE_SPEC_TAG: tag}), limit=ATTEMPT_LOOKBACK))
    attempt = 0 if last is None else last + 1
    request = dg.RunRequest(run_key=f"base_model:{spec}:{attempt}", job_name=base_model_job.name,
                            tags={TRIGGER_TAG: SENSOR, BASE_SPEC_TAG: tag, ATTEMPT_TAG: str(attempt)})
    if failures:
        return [request], f"base_model ({spec}): the last build failed; retrying (retry {failures} of {max_retries})", True
    return [request], f"base_model is not materialized yet: requesting it ({spec}); domains wait for it", False


def _attempt(runs: list[dg.DagsterRun]) -> int | None:
    """The highest attempt number among `runs`: the next run key is one above, so it never repeats
    one Dagster has seen (a run re-executed by hand may copy the tag; one without it is ignored)."""
    attempts = [int(value) for run in runs if (value := run.tags.get(ATTEMPT_TAG, "")).isdigit()]
    return max(attempts, default=None)


def _digest_cache_dir(instance: dg.DagsterInstance, root: Path) -> Path | None:
    """The file digests cache, in the Dagster instance's folder (never in the landing root, which
    producers write); one folder per landing root. None (no cache across ticks) without one."""
    try:
        base = Path(instance.root_directory)
    except (AttributeError, NotImplementedError, dg.DagsterInvariantViolationError):
        return None
    return base / "loraline" / "landing-digests" / json_fingerprint(str(root))[:12]
