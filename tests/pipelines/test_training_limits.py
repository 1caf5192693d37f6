"""The real qlora_adapter step (Pipes subprocess) at its time limit: it stops after a checkpoint, fails
without a retry naming the domain, the limit and the step; raising the limit resumes from that
checkpoint, and once the adapter is published its checkpoint folder is gone."""

import dagster as dg
import pytest

from pipelines.definitions import defs
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains
from resources.storage import ArtifactStore

TRAINING = {"max_steps": 6, "logging_steps": 2, "save_steps": 100}


def train(instance: dg.DagsterInstance, **settings) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection={dg.AssetKey("qlora_adapter")})
    return job.execute_in_process(instance=instance, partition_key="support", raise_on_error=False,
                                  run_config={"ops": {"qlora_adapter": {"config": TRAINING | settings}}})


def said(error) -> str:
    return error.message + (said(error.cause) if error.cause else "")


def test_the_time_limit_stops_after_a_checkpoint_and_a_higher_limit_resumes(tmp_path: pytest.TempPathFactory) -> None:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LORALINE_LANDING_DIR", str(tmp_path / "landing"))
        env.setenv("LORALINE_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
        env.delenv("LORALINE_BASE_MODEL", raising=False)
        seed_sample_domains(tmp_path / "landing", rows_per_domain=40)
        with dg.instance_for_test() as instance:
            register_domains(instance, ["support"])
            assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
            upstream = defs.resolve_job_def("domain_finetune_job").get_subset(
                asset_selection={dg.AssetKey(a) for a in ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset")})
            assert upstream.execute_in_process(instance=instance, partition_key="support").success

            stopped = train(instance, max_train_minutes=1e-6)
            assert not stopped.success
            assert not [e for e in stopped.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # a deliberate stop
            message = said(stopped.get_step_failure_events()[0].step_failure_data.error)
            assert ("domain 'support': training stopped: TrainingTimeLimit: training stopped at its time limit "
                    "(max_train_minutes 1e-06) after step 1/6; checkpoint of step 1 saved in ") in message
            checkpoints = ArtifactStore().folder("qlora_adapter", "support") / "checkpoints"
            [folder] = list(checkpoints.iterdir())
            assert (folder / "step-00000001").is_dir()
            assert sorted(p.name.split("-")[0] for p in folder.glob("*.json")) == ["error", "request"]  # per attempt

            resumed = train(instance, max_train_minutes=60)  # another limit: the same checkpoint folder
            assert resumed.success
            metadata = resumed.get_asset_materialization_events()[0].materialization.metadata
            assert metadata["resumed_from"].value == str(folder / "step-00000001") and metadata["steps"].value == 6
            assert list(checkpoints.iterdir()) == []  # removed (under its lock) once the adapter was published
