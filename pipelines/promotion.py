"""After a domain's chain succeeds, its adapter is offered to the serving registry: the path from
landed data to a served adapter needs no click (`loraline serve` reloads the registry by itself)."""

import dagster as dg

from pipelines.jobs import domain_finetune_job, registry_job


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[domain_finetune_job],
    request_job=registry_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="When a domain's chain succeeds, materialize adapter_registry: the new adapter is promoted if it "
    "passed its gate and is not worse than the one served.",
)
def promote_after_training(context: dg.RunStatusSensorContext) -> dg.RunRequest:
    run = context.dagster_run
    # One promotion per finished run: a run key Dagster will not launch twice.
    return dg.RunRequest(run_key=f"promote:{run.run_id}", tags={"loraline/trigger": "promote_after_training",
                                                                 "loraline/after_run": run.run_id})
