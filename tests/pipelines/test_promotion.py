"""promote_after_training: a successful domain chain asks for adapter_registry, once per run."""

import dagster as dg

from pipelines.definitions import defs


@dg.op
def _noop() -> None:
    pass


@dg.job
def _finished() -> None:
    _noop()


def test_a_successful_chain_requests_one_promotion_run() -> None:
    sensor = defs.resolve_sensor_def("promote_after_training")
    assert sensor.job_name == "registry_job" and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert defs.resolve_job_def("registry_job").asset_layer.selected_asset_keys == {dg.AssetKey("adapter_registry")}
    with dg.instance_for_test() as instance:
        result = _finished.execute_in_process(instance=instance)
        success = next(e for e in instance.all_logs(result.run_id) if e.dagster_event and e.dagster_event.event_type == dg.DagsterEventType.RUN_SUCCESS)
        context = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=success.dagster_event,
                                                     dagster_instance=instance, dagster_run=result.dagster_run)
        request = sensor(context)
    assert request.run_key == f"promote:{result.run_id}" and request.tags["loraline/after_run"] == result.run_id
