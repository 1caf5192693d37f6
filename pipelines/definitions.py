"""The Dagster entry point: `dg dev`, `dg check defs` and `dagster dev` load `defs` from here ([tool.dg] and [tool.dagster] in pyproject.toml)."""

import dagster as dg

from assets.corpora.assets import raw_corpus
from assets.evaluation.assets import adapter_evaluation
from assets.evaluation.cross_domain.assets import domain_leaderboard
from assets.foundation.assets import base_model
from assets.quality.assets import clean_corpus
from assets.release.assets import merged_model
from assets.release.gguf.assets import gguf_export
from assets.serving.assets import adapter_registry
from assets.tokenization.assets import training_dataset
from assets.training.assets import qlora_adapter
from pipelines.environment import executor_for, resources_for
from pipelines.jobs import base_model_job, domain_finetune_job, registry_job
from pipelines.promotion import promote_after_training
from pipelines.sensors import landing_zone_sensor

defs = dg.Definitions(
    assets=[base_model, raw_corpus, clean_corpus, training_dataset, qlora_adapter, adapter_evaluation, merged_model, domain_leaderboard, adapter_registry,
            gguf_export],
    jobs=[domain_finetune_job, base_model_job, registry_job],
    sensors=[landing_zone_sensor, promote_after_training],
    resources=resources_for(),
    executor=executor_for(),  # LORALINE_ENV: in the run's process locally, a pod per step on Kubernetes (pipelines/environment.py)
)
