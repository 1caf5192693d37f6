"""Experiment tracking: one domain's chain (ingest to evaluation) with MLflow on, to a real local
SQLite tracking store; then a tracking server that cannot be reached, and tracking off (the default)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.environment import resources_for
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains
from resources.compute import ComputeSettings
from resources.lineage import DATA_VERSION_TAG
from resources.tracking import URI_VARIABLE, ExperimentTracking, artifact_location, public_uri

pytestmark = pytest.mark.integration  # Dagster runs, a Pipes trainer, a fresh interpreter

CHAIN = ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter", "adapter_evaluation")
STEPS = 6
FAST = {"max_steps": STEPS, "logging_steps": 1}  # a loss point per step: the history is as long as the training
QUICK_EVALUATION = {"generations": 0, "task_examples": 0}  # eval loss only: no greedy generation
ROOT = Path(__file__).resolve().parents[2]


def definitions(tracking: ExperimentTracking, launcher: str = "subprocess") -> dg.Definitions:
    resources = resources_for() | {"tracking": tracking, "compute": ComputeSettings(training_launcher=launcher)}
    return dg.Definitions(assets=list(defs.assets), jobs=list(defs.jobs), resources=resources, executor=dg.in_process_executor)


def run(instance, tracking: ExperimentTracking, selection=CHAIN, launcher: str = "subprocess", **training) -> dg.ExecuteInProcessResult:
    job = definitions(tracking, launcher).resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey(a) for a in selection})
    ops = {"qlora_adapter": {"config": FAST | training}, "adapter_evaluation": {"config": QUICK_EVALUATION}}
    config = {"ops": {op: settings for op, settings in ops.items() if op in selection}}
    return job.execute_in_process(instance=instance, partition_key="support", run_config=config, raise_on_error=False)


def latest(instance, asset: str, partition: str | None = "support") -> dg.AssetMaterialization:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition] if partition else None), limit=1).records
    return records[0].asset_materialization


def values(materialization: dg.AssetMaterialization) -> dict:
    return {key: value.value for key, value in materialization.metadata.items()}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("tracking")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(root / "landing"))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(root / "artifacts"))
        env.delenv("LORALINE_BASE_MODEL", raising=False)
        env.delenv(URI_VARIABLE, raising=False)
        seed_sample_domains(root / "landing", rows_per_domain=40)
        uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
        tracking = ExperimentTracking(enabled=True, tracking_uri=uri)
        with dg.instance_for_test() as instance:
            register_domains(instance, ["support"])
            assert definitions(tracking).resolve_job_def("base_model_job").execute_in_process(instance=instance).success
            result = run(instance, tracking)
            assert result.success
            yield {"instance": instance, "result": result, "uri": uri, "root": root}


def mlflow_runs(uri: str) -> list:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("loraline")
    assert experiment is not None, "no 'loraline' experiment in the tracking store"
    return client.search_runs([experiment.experiment_id])


def test_the_training_run_is_in_mlflow_with_its_dagster_lineage(world) -> None:
    from mlflow import MlflowClient

    instance, uri = world["instance"], world["uri"]
    runs = mlflow_runs(uri)
    assert len(runs) == 1, [r.info.run_name for r in runs]
    tracked = runs[0]
    assert tracked.info.status == "FINISHED"
    tags, params = tracked.data.tags, tracked.data.params
    assert tags["dagster.run_id"] == world["result"].run_id
    assert (tags["dagster.asset"], tags["dagster.partition"]) == ("qlora_adapter", "support")
    assert tags["dagster.code_version"] == "3"
    versions = {"training_dataset": latest(instance, "training_dataset").tags[DATA_VERSION_TAG],
                "base_model": latest(instance, "base_model", None).tags[DATA_VERSION_TAG],
                "qlora_adapter": latest(instance, "qlora_adapter").tags[DATA_VERSION_TAG]}
    assert {asset: tags[f"dagster.data_version.{asset}"] for asset in versions} == versions
    assert (params["max_steps"], params["logging_steps"], params["lora_rank"], params["device"]) == (str(STEPS), "1", "8", "cpu")
    assert params["base_model.spec"] == values(latest(instance, "base_model", None))["spec"]

    adapter = values(latest(instance, "qlora_adapter"))
    assert adapter["mlflow_run_id"] == tracked.info.run_id and adapter["mlflow_experiment"] == "loraline"
    assert adapter["steps"] == STEPS
    client = MlflowClient(tracking_uri=uri)
    losses = client.get_metric_history(tracked.info.run_id, "train_loss")
    assert [m.step for m in losses] == list(range(1, STEPS + 1))
    table = {record.data["step"]: record.data["loss"] for record in adapter["loss_table"].records}
    assert {m.step: m.value for m in losses} == pytest.approx(table)
    assert len(client.get_metric_history(tracked.info.run_id, "learning_rate")) == STEPS
    assert tracked.data.metrics["final_train_loss"] == pytest.approx(adapter["final_train_loss"])

    folder = Path(adapter["path"])
    logged = {Path(f.path).name: f.file_size for f in client.list_artifacts(tracked.info.run_id, "adapter")}
    assert logged == {p.name: p.stat().st_size for p in folder.iterdir()}
    assert "adapter_model.safetensors" in logged


def test_the_evaluation_is_logged_to_the_run_of_the_adapter_it_scored(world) -> None:
    from mlflow import MlflowClient

    (tracked,) = mlflow_runs(world["uri"])
    evaluation = values(latest(world["instance"], "adapter_evaluation"))
    assert evaluation["mlflow_run_id"] == tracked.info.run_id
    metrics = tracked.data.metrics
    for key in ("eval_loss_base", "eval_loss_adapter", "perplexity_adapter", "eval_tokens"):
        assert metrics[key] == pytest.approx(evaluation[key]), key
    assert metrics["adapter_beats_base"] == float(evaluation["adapter_beats_base"])
    assert tracked.data.tags["dagster.evaluation.run_id"] == world["result"].run_id
    names = [Path(f.path).name for f in MlflowClient(tracking_uri=world["uri"]).list_artifacts(tracked.info.run_id, "evaluation")]
    assert names == ["evaluation.json"]


def test_an_unreachable_tracking_server_warns_and_the_adapter_still_materializes(world) -> None:
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = world["instance"]
    down = ExperimentTracking(enabled=True, tracking_uri=f"http://127.0.0.1:{port}", request_retries=0, request_timeout_s=5)
    # Another seed: a new adapter is trained, in this process (the Pipes path is proven above; a trainer process costs its start-up).
    result = run(instance, down, selection=("qlora_adapter",), launcher="in_process", seed=7)
    assert result.success
    adapter = values(latest(instance, "qlora_adapter"))
    assert Path(adapter["path"]).is_dir() and "mlflow_run_id" not in adapter
    assert f"127.0.0.1:{port}" in adapter["mlflow_error"]
    warnings = [e.message for e in instance.all_logs(result.run_id) if e.level == 30 and "MLflow tracking of the training run failed" in (e.message or "")]
    assert warnings, "no warning said why tracking failed"
    assert len(mlflow_runs(world["uri"])) == 1  # nothing went to the other store

    # required: the same outage fails the step, naming the server (the evaluation of the new adapter here).
    strict = ExperimentTracking(enabled=True, tracking_uri=f"http://127.0.0.1:{port}", request_retries=0, request_timeout_s=5, required=True)
    failed = run(instance, strict, selection=("adapter_evaluation",))
    assert not failed.success
    (failure,) = failed.get_step_failure_events()
    said = failure.step_failure_data.error.message
    assert f"127.0.0.1:{port}" in said and "tracking is required" in said, said


def test_tracking_is_off_by_default_and_imports_no_mlflow(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "import dagster as dg\n"
        "from pipelines.definitions import defs\n"
        "from pipelines.environment import resources_for\n"
        "from resources.tracking import ExperimentTracking\n"
        "tracking = ExperimentTracking()\n"
        "wired = dg.Definitions(assets=list(defs.assets), jobs=list(defs.jobs), resources=resources_for() | {'tracking': tracking})\n"
        "wired.resolve_job_def('domain_finetune_job')\n"
        "assert not tracking.is_on()\n"
        "assert tracking.log_training(None, {}, None) == {} and tracking.log_evaluation(None, {}, None) == {}\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported with tracking off'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != URI_VARIABLE} | {"LORALINE_ARTIFACTS_DIR": str(tmp_path / "artifacts"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (tmp_path / "mlflow").exists() and not (tmp_path / "mlruns").exists()


def test_the_store_follows_the_environment_and_hides_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(URI_VARIABLE, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("LORALINE_ARTIFACTS_DIR", str(tmp_path / "store" / "artifacts"))
    assert ExperimentTracking().resolved_uri() == f"sqlite:///{tmp_path / 'store' / 'mlflow' / 'mlflow.db'}"  # beside the artifacts
    assert artifact_location(f"sqlite:///{tmp_path / 'mlflow.db'}") == (tmp_path / "artifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert not ExperimentTracking().is_on()  # MLflow's variable names a store, it does not turn tracking on
    assert ExperimentTracking(enabled=True).resolved_uri() == "http://mlflow.internal:5000"
    monkeypatch.setenv(URI_VARIABLE, "https://user:secret@tracking.example:8443/mlflow")
    tracking = ExperimentTracking()
    assert tracking.is_on() and tracking.resolved_uri() == "https://user:secret@tracking.example:8443/mlflow"
    assert ExperimentTracking(tracking_uri="sqlite:///x.db").resolved_uri() == "sqlite:///x.db"  # the field wins
    assert public_uri(tracking.resolved_uri()) == "https://tracking.example:8443/mlflow"
