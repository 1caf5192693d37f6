"""Resources and the executor per environment, chosen in one place.

Locations come from LORALINE_* environment variables, read when a resource is used (never at
import time), with defaults under the working directory: see each resource's field description.

Environments (LORALINE_ENV): 'local' runs every step in the run's process and trains in a Pipes
subprocess; 'k8s' (the Helm deployment, deploy/k8s/values.yaml) runs each step in a pod of its own
(dagster-k8s' k8s_job_executor), gives the `accelerator` steps GPU pods (deploy/k8s/training.yaml),
and trains as LORALINE_TRAINING_LAUNCHER says (default 'k8s': a GPU pod through PipesK8sClient).
"""

import os

import dagster as dg

from resources.base_model_source import BaseModelSource
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.registry import AdapterRegistry
from resources.storage import ArtifactStore
from resources.tracking import ExperimentTracking

ENVIRONMENTS = ("local", "k8s")
# The steps in the `accelerator` pool (their asset decorators): GPU pods under the k8s executor.
ACCELERATOR_STEPS = ("qlora_adapter", "adapter_evaluation", "merged_model", "domain_leaderboard")
K8S_TRAINING_LAUNCHERS = ("k8s", "k8s_multinode", "subprocess", "torchrun")
# Per-file download/save bars from transformers and datasets drown the training progress lines in
# run logs. Set (unless already set) where the definitions load: `dagster dev`, the demo, the tests.
QUIET_PROGRESS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def resources_for(environment: str | None = None) -> dict:
    for name, value in QUIET_PROGRESS.items():
        os.environ.setdefault(name, value)
    environment = _environment(environment)
    return {
        "landing": LandingZone(),
        "artifacts": ArtifactStore(),
        "base_model_source": BaseModelSource(),
        "compute": compute_for(environment),
        "registry": AdapterRegistry(),
        "tracking": ExperimentTracking(),  # MLflow, off unless enabled or LORALINE_MLFLOW_TRACKING_URI is set
        # Out-of-process training for the 'subprocess' and 'torchrun' launchers; the 'k8s' launchers
        # start dagster-k8s' PipesK8sClient themselves (resources/k8s_launch.py).
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }


def compute_for(environment: str | None = None) -> ComputeSettings:
    environment = _environment(environment)
    if environment == "local":
        return ComputeSettings()
    launcher = os.environ.get("LORALINE_TRAINING_LAUNCHER", "k8s")
    if launcher not in K8S_TRAINING_LAUNCHERS:
        raise ValueError(f"LORALINE_TRAINING_LAUNCHER {launcher!r} in LORALINE_ENV=k8s; known: {', '.join(K8S_TRAINING_LAUNCHERS)}")
    return ComputeSettings(training_launcher=launcher)


def executor_for(environment: str | None = None) -> dg.ExecutorDefinition:
    """'local': every step in the run's process. 'k8s': a pod per step (k8s_job_executor); the accelerator
    steps get GPU pods (deploy/k8s/training.yaml), except qlora_adapter when its trainer has a pod of its own."""
    environment = _environment(environment)
    if environment == "local":
        # One process per run, not one per step (3-5 s each on 2 cores); training still runs in its own
        # Pipes subprocess (ComputeSettings.training_launcher), so a crash there ends that process only.
        return dg.in_process_executor
    from dagster_k8s import k8s_job_executor

    return k8s_job_executor.configured(k8s_executor_config(compute_for(environment)), name="loraline_k8s")


def k8s_executor_config(compute: ComputeSettings) -> dict:
    """k8s_job_executor config: GPU pods for the accelerator steps (a step's op name is its asset's name),
    so no asset decorator carries cluster details. Everything else of a step pod (image, env, the cache
    volume) comes from the run's config, which the Helm chart takes from the user-code deployment."""
    from resources.compute import K8S_LAUNCHERS
    from resources.kubernetes import step_k8s_config

    gpu_pod = step_k8s_config(compute.pod_settings())
    gpu_steps = [s for s in ACCELERATOR_STEPS if not (s == "qlora_adapter" and compute.training_launcher in K8S_LAUNCHERS)]
    return {"per_step_k8s_config": {step: gpu_pod for step in gpu_steps}}


def _environment(environment: str | None) -> str:
    environment = environment or os.environ.get("LORALINE_ENV", "local")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown LORALINE_ENV {environment!r}; known: {', '.join(ENVIRONMENTS)}")
    return environment
