"""Kubernetes manifests for the heavy steps, as plain dicts (camelCase, what the API and `kubectl` take).

Three shapes, all from one `PodSettings` (deploy/k8s/training.yaml):
- the training pod: `python -m assets.training REQUEST` (torchrun `--standalone` for several GPUs)
  on a GPU node, the artifact cache mounted where the launching step sees it, started through
  dagster-k8s' `PipesK8sClient` (`pod_run_arguments`);
- the per-step pod config of dagster-k8s' `k8s_job_executor` (`step_k8s_config`): GPU, node
  selector and tolerations for the steps that carry the `accelerator` pool;
- the multi-node launch (`multinode_manifests`): an Indexed Job of `nodes` pods plus the headless
  Service that gives pod 0 a DNS name for torchrun's c10d rendezvous. Chosen over a Kubeflow
  `PyTorchJob` because it is core `batch/v1` (no operator or CRD to install, validated by the
  Kubernetes schema offline) and the launcher stays Dagster Pipes, as for one pod.

Pure: no dagster and no kubernetes client here, so the tests validate every manifest offline.
"""

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# A resource quantity as Kubernetes parses it (resource.Quantity), never negative: "8", "500m", "48Gi", "1.5".
QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label: namespaces, claims, accounts
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
TRAINER_LABEL = "loraline/trainer"  # selects a multi-node launch's pods for its headless Service
CURRENT_IMAGE = "DAGSTER_CURRENT_IMAGE"  # set by the Dagster Helm chart in user-code, run and step pods
PASSED_PREFIX = "LORALINE_"  # the launching step's LORALINE_* variables reach the trainer (dtype, locations)


class Toleration(BaseModel):
    """A taint the training pods tolerate (GPU node pools are usually tainted so nothing else lands there)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    key: str = Field(..., min_length=1, max_length=253, description="Taint key, e.g. 'nvidia.com/gpu'.")
    operator: Literal["Exists", "Equal"] = Field("Exists", description="'Exists' matches any value; 'Equal' needs `value`.")
    value: str = Field("", max_length=63, description="Taint value, for operator 'Equal' only.")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        "NoSchedule", description="Taint effect matched; '' matches every effect."
    )

    @model_validator(mode="after")
    def _value_needs_equal(self) -> "Toleration":
        if self.operator == "Exists" and self.value:
            raise ValueError(f"toleration {self.key!r}: operator 'Exists' takes no value (got {self.value!r}); use 'Equal'")
        return self

    def manifest(self) -> dict[str, str]:
        return {k: v for k, v in (("key", self.key), ("operator", self.operator), ("value", self.value), ("effect", self.effect)) if v}


class PodSettings(BaseModel):
    """Where and how big the GPU pods are: training (one pod or `nodes` pods), evaluation and merging."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    image: str = Field(
        "", max_length=512, description="Container image of the trainer (this project's image, deploy/Dockerfile with VARIANT=cuda). "
        "Empty: $DAGSTER_CURRENT_IMAGE, the image the Helm chart runs the user code with, so steps and trainer match.",
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = Field(
        "IfNotPresent", description="'IfNotPresent' reuses a node's copy of a multi-GB CUDA image; 'Always' for moving tags."
    )
    namespace: str = Field("", description="Namespace of the trainer pods. Empty: the namespace the step runs in.")
    service_account: str = Field(
        "", description="Service account of the trainer pods (needs no API rights). Empty: the namespace's default."
    )
    gpus: int = Field(
        1, ge=0, le=16, strict=True, description="GPUs per pod (requested and limited as `gpu_resource`); 0 trains on "
        "CPU. Several GPUs in one pod train data-parallel under torchrun (one process per GPU).",
    )
    gpu_resource: str = Field(
        "nvidia.com/gpu", pattern=r"^[a-z0-9.-]+/[a-z0-9.-]+$", max_length=253,
        description="Extended resource name of a GPU ('amd.com/gpu' on AMD nodes).",
    )
    cpu: str = Field("8", description="CPU request (cores, e.g. '8' or '7500m'). No CPU limit: a limit throttles the data loader.")
    memory: str = Field(
        "48Gi", description="Memory request and limit (e.g. '48Gi'). A 4-bit 7B base needs ~6 GiB of host memory while "
        "loading; the limit turns a leak into an OOM kill of this pod (retried), not of the node.",
    )
    shared_memory: str = Field(
        "8Gi", description="Size of /dev/shm (memory-backed). NCCL and DataLoader workers need more than the 64 MiB a container gets."
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, max_length=32, description="Node labels the pods need, e.g. {'nvidia.com/gpu.present': 'true'} (GPU operator) "
        "or a node pool label. Empty: any node the GPU request fits.",
    )
    tolerations: tuple[Toleration, ...] = Field(
        (Toleration(key="nvidia.com/gpu"),), max_length=32,
        description="Taints tolerated. The default tolerates the usual `nvidia.com/gpu` taint of GPU node pools.",
    )
    cache_claim: str = Field(
        "", description="PersistentVolumeClaim holding the artifact cache (artifacts, checkpoints, model downloads), "
        "mounted at `cache_path` in every pod. Needed whenever the trainer runs in a pod of its own (it reads its "
        "request and writes its report there); ReadWriteMany for several nodes. Empty: an emptyDir (scratch only).",
    )
    cache_path: str = Field(
        "/var/cache/loraline", max_length=1024, description="Where the cache is mounted; LORALINE_ARTIFACTS_DIR should lie under it, "
        "the same path in the user-code, step and trainer pods, since requests name absolute paths.",
    )
    env: dict[str, str] = Field(default_factory=dict, max_length=256, description="Extra environment variables of the trainer container.")
    nodes: int = Field(
        2, ge=2, le=64, strict=True, description="Pods of a multi-node launch (training_launcher 'k8s_multinode'), "
        "`gpus` processes each; node 0 hosts the c10d rendezvous and reports back through Pipes.",
    )
    rendezvous_port: int = Field(29500, ge=1024, le=65535, strict=True, description="Port of the c10d rendezvous on node 0.")

    @field_validator("cpu", "memory", "shared_memory")
    @classmethod
    def _quantity(cls, value: str, info) -> str:
        if not QUANTITY.fullmatch(value) or float(re.sub(r"[^0-9.]", "", value) or 0) <= 0:
            raise ValueError(f"{info.field_name} {value!r} is not a positive Kubernetes quantity (e.g. '8', '500m', '48Gi')")
        return value

    @field_validator("namespace", "service_account", "cache_claim")
    @classmethod
    def _dns_label(cls, value: str, info) -> str:
        if value and (len(value) > 63 or not DNS_LABEL.fullmatch(value)):
            raise ValueError(f"{info.field_name} {value!r} is not a Kubernetes name (lower-case letters, digits, '-'; at most 63)")
        return value

    @field_validator("node_selector")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not LABEL_KEY.fullmatch(key) or not LABEL_VALUE.fullmatch(label):
                raise ValueError(f"node_selector {key!r}: {label!r} is not a valid label key and value")
        return value

    @field_validator("cache_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in Path(value).parts:
            raise ValueError(f"cache_path {value!r} must be an absolute path without '..'")
        return value

    def resolved_image(self, environ: Mapping[str, str]) -> str:
        image = self.image or environ.get(CURRENT_IMAGE, "")
        if not image:
            raise ValueError(f"no trainer image: set `image` in the pod settings, or launch from a pod where {CURRENT_IMAGE} "
                             "is set (the Dagster Helm chart sets it in user-code, run and step pods)")
        return image


def load_pod_settings(path: Path) -> PodSettings:
    """Pod settings from a YAML file; errors name the file."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"pod settings {path}: {error}") from error
    try:
        return PodSettings.model_validate(data)
    except ValueError as error:
        raise ValueError(f"pod settings {path}: {error}") from error


def trainer_command(request: str, gpus: int) -> list[str]:
    """`python -m assets.training REQUEST`, under torchrun `--standalone` for several GPUs in the pod."""
    launcher = ["python"]
    if gpus > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}"]
    return [*launcher, "-m", "assets.training", request]


def container_resources(settings: PodSettings) -> dict[str, dict[str, str]]:
    """Requests and limits. GPUs are an extended resource: request and limit must be equal (or the request omitted)."""
    requests = {"cpu": settings.cpu, "memory": settings.memory}
    limits = {"memory": settings.memory}
    if settings.gpus:
        requests[settings.gpu_resource] = limits[settings.gpu_resource] = str(settings.gpus)
    return {"requests": requests, "limits": limits}


def cache_volumes(settings: PodSettings) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts): the artifact cache, and a memory-backed /dev/shm."""
    cache = {"persistentVolumeClaim": {"claimName": settings.cache_claim}} if settings.cache_claim else {"emptyDir": {}}
    volumes = [{"name": "loraline-cache", **cache},
               {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shared_memory}}]
    mounts = [{"name": "loraline-cache", "mountPath": settings.cache_path}, {"name": "dshm", "mountPath": "/dev/shm"}]
    return volumes, mounts


def training_pod_spec(settings: PodSettings, command: list[str], environ: Mapping[str, str]) -> dict[str, Any]:
    """The PodSpec of a trainer: one container, never restarted in place (a retry is Dagster's, from a checkpoint)."""
    volumes, mounts = cache_volumes(settings)
    passed = {name: value for name, value in environ.items() if name.startswith(PASSED_PREFIX)}
    env = {**passed, "HF_HOME": f"{settings.cache_path}/huggingface", "PYTHONUNBUFFERED": "1", **settings.env}
    container = {
        "name": "trainer",
        "image": settings.resolved_image(environ),
        "imagePullPolicy": settings.image_pull_policy,
        "command": command,
        "env": [{"name": name, "value": value} for name, value in sorted(env.items())],
        "resources": container_resources(settings),
        "volumeMounts": mounts,
    }
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container], "volumes": volumes}
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [t.manifest() for t in settings.tolerations]
    return spec


def _needs_shared_cache(settings: PodSettings, launcher: str) -> None:
    if not settings.cache_claim:
        raise ValueError(f"training_launcher {launcher!r} runs the trainer in a pod of its own, which reads its request and "
                         "writes its report under the artifacts root: set `cache_claim` to the PersistentVolumeClaim the "
                         "steps mount (ReadWriteMany for several nodes)")


def pod_run_arguments(settings: PodSettings, request: str, environ: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of `PipesK8sClient.run` (besides `context`) for one training pod."""
    _needs_shared_cache(settings, "k8s")
    spec = training_pod_spec(settings, trainer_command(request, settings.gpus), environ)
    return {"namespace": settings.namespace or None, "base_pod_meta": {"labels": {"app.kubernetes.io/name": "loraline-trainer"}},
            "base_pod_spec": spec}


def step_k8s_config(settings: PodSettings) -> dict[str, Any]:
    """dagster-k8s step config (k8s_job_executor `per_step_k8s_config` entry) for a GPU step: resources, node
    selector, tolerations, /dev/shm. The artifact cache comes with every run's config (Helm values), not from here."""
    shm = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": settings.shared_memory}}
    pod_spec: dict[str, Any] = {"volumes": [shm]}
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        pod_spec["tolerations"] = [t.manifest() for t in settings.tolerations]
    return {"container_config": {"resources": container_resources(settings), "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}]},
            "pod_spec_config": pod_spec}


def multinode_manifests(settings: PodSettings, name: str, request: str, environ: Mapping[str, str],
                        env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Job, Service) of a multi-node launch named `name`.

    The Indexed Job runs `nodes` pods named `<name>-<index>`, each `torchrun --nnodes=N
    --nproc-per-node=G --rdzv-backend=c10d --rdzv-endpoint=<name>-0.<name>:PORT`; the headless
    Service `<name>` (subdomain of every pod) gives them DNS names before they are ready. c10d hands
    out node ranks in the sorted order of the nodes' host names, and `<name>-0` sorts first, so
    global rank 0, the process that opens Dagster Pipes, runs in pod 0: its log is the one to read.
    `env` (the Pipes bootstrap variables) goes to every pod; only rank 0 uses it.
    """
    if not DNS_LABEL.fullmatch(name) or not name[0].isalpha() or len(name) > 50:
        raise ValueError(f"multi-node launch name {name!r}: a Kubernetes service name (letter first, lower-case, at most 50)")
    _needs_shared_cache(settings, "k8s_multinode")
    endpoint = f"{name}-0.{name}:{settings.rendezvous_port}"
    command = ["python", "-m", "torch.distributed.run", f"--nnodes={settings.nodes}", f"--nproc-per-node={max(settings.gpus, 1)}",
               "--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}", f"--rdzv-id={name}", "-m", "assets.training", request]
    spec = training_pod_spec(settings, command, environ)
    container = spec["containers"][0]
    container["env"] += [{"name": key, "value": value} for key, value in sorted((env or {}).items())]
    container["ports"] = [{"name": "rendezvous", "containerPort": settings.rendezvous_port}]
    spec["subdomain"] = name
    labels = {"app.kubernetes.io/name": "loraline-trainer", TRAINER_LABEL: name}
    metadata = {"name": name, "labels": labels, **({"namespace": settings.namespace} if settings.namespace else {})}
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": copy.deepcopy(metadata),
        "spec": {
            "completionMode": "Indexed", "completions": settings.nodes, "parallelism": settings.nodes,
            # One try: a lost node breaks the rendezvous of all. Dagster's retry policy relaunches the
            # whole group, which resumes from the last checkpoint.
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 3600,
            "template": {"metadata": {"labels": dict(labels)}, "spec": spec},
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": copy.deepcopy(metadata),
        "spec": {"clusterIP": "None", "selector": {TRAINER_LABEL: name}, "publishNotReadyAddresses": True,
                 "ports": [{"name": "rendezvous", "port": settings.rendezvous_port, "targetPort": settings.rendezvous_port}]},
    }
    return job, service
