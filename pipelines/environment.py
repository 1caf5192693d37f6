"""Resources per environment, chosen in one place.

Locations come from LORALINE_* environment variables, read when a resource is used (never at
import time), with defaults under the working directory: see each resource's field description.
"""

import os

import dagster as dg

from resources.base_model_source import BaseModelSource
from resources.compute import ComputeSettings
from resources.landing import LandingZone
from resources.registry import AdapterRegistry
from resources.storage import ArtifactStore

ENVIRONMENTS = ("local",)
# Per-file download/save bars from transformers and datasets drown the training progress lines in
# run logs. Set (unless already set) where the definitions load: `dagster dev`, the demo, the tests.
QUIET_PROGRESS = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}


def resources_for(environment: str | None = None) -> dict:
    for name, value in QUIET_PROGRESS.items():
        os.environ.setdefault(name, value)
    environment = environment or os.environ.get("LORALINE_ENV", "local")
    if environment not in ENVIRONMENTS:
        raise ValueError(f"unknown LORALINE_ENV {environment!r}; known: {', '.join(ENVIRONMENTS)}")
    return {
        "landing": LandingZone(),
        "artifacts": ArtifactStore(),
        "base_model_source": BaseModelSource(),
        "compute": ComputeSettings(),
        "registry": AdapterRegistry(),
        # Out-of-process training (ComputeSettings.training_launcher); dagster-k8s' PipesK8sClient in a cluster.
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }
