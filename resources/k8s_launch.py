"""Training in Kubernetes through Dagster Pipes: one pod (`PipesK8sClient`) or an Indexed Job of several
nodes (the same Pipes session, rank 0's pod log read like PipesK8sClient reads its pod's).

The manifests come from resources/kubernetes.py; this module only talks to the API server. dagster_k8s
and kubernetes are imported inside the functions: only a cluster deployment installs them (extra `k8s`).
"""

import os
import uuid

import dagster as dg

from resources.kubernetes import PodSettings, multinode_manifests, pod_run_arguments

POLL_SECONDS = 10.0  # between API reads while waiting; a training run lasts minutes to days


def run_training_pod(context: dg.AssetExecutionContext, settings: PodSettings, request: str) -> None:
    """One trainer pod through dagster-k8s' PipesK8sClient: its log lines and report come back like a subprocess's."""
    from dagster_k8s import PipesK8sClient

    # In a pod (KUBERNETES_SERVICE_HOST set) the client loads the in-cluster config, elsewhere ~/.kube/config.
    PipesK8sClient(poll_interval=POLL_SECONDS).run(context=context, **pod_run_arguments(settings, request, os.environ))


def run_training_job(context: dg.AssetExecutionContext, settings: PodSettings, request: str) -> None:
    """`settings.nodes` trainer pods (Indexed Job + headless Service for the c10d rendezvous).

    PipesK8sClient launches exactly one pod, so the session is opened here with its parts: the
    context goes to every pod in environment variables, and the messages are read from the log of
    pod 0, where global rank 0 runs (resources/kubernetes.py, multinode_manifests). The Job and the
    Service are deleted afterwards, whatever happened; a failed pod fails the Job (no in-place retry)
    and so the step, which Dagster's retry policy relaunches from the last checkpoint.
    """
    import kubernetes
    from dagster_k8s.client import DagsterKubernetesClient, WaitForPodState
    from dagster_k8s.pipes import PipesK8sPodLogsMessageReader
    from dagster_k8s.utils import detect_current_namespace

    _load_config(kubernetes)
    client = DagsterKubernetesClient.production_client()
    namespace = settings.namespace or detect_current_namespace(None) or "default"
    name = f"loraline-train-{context.run_id[:8]}-{uuid.uuid4().hex[:6]}"
    reader = PipesK8sPodLogsMessageReader()
    with dg.open_pipes_session(context=context, context_injector=dg.PipesEnvContextInjector(), message_reader=reader) as session:
        job, service = multinode_manifests(settings, name, request, os.environ, env=session.get_bootstrap_env_vars())
        client.core_api.create_namespaced_service(namespace, service)
        try:
            client.batch_api.create_namespaced_job(namespace, job)
            context.log.info(f"multi-node training: Job {namespace}/{name}, {settings.nodes} pods x {max(settings.gpus, 1)} processes")
            first = _pod_of_index(client, namespace, name, 0)
            client.wait_for_pod(first, namespace, wait_for_state=WaitForPodState.Ready, wait_time_between_attempts=POLL_SECONDS)
            reader.consume_pod_logs(context=context, core_api=client.core_api, pod_name=first, namespace=namespace)
            client.wait_for_job_success(name, namespace, wait_time_between_attempts=POLL_SECONDS, num_pods_to_wait_for=settings.nodes)
        finally:
            _delete(client, namespace, name)


def _load_config(kubernetes) -> None:
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        kubernetes.config.load_incluster_config()
    else:
        kubernetes.config.load_kube_config()


def _pod_of_index(client, namespace: str, job: str, index: int, attempts: int = 180) -> str:
    """The name of the Job's pod with this completion index, once the Job controller has created it."""
    import time

    selector = f"job-name={job},batch.kubernetes.io/job-completion-index={index}"
    for _ in range(attempts):
        pods = client.core_api.list_namespaced_pod(namespace, label_selector=selector).items
        if pods:
            return pods[0].metadata.name
        time.sleep(POLL_SECONDS / 5)
    raise dg.Failure(f"Job {namespace}/{job}: no pod of index {index} after {attempts * POLL_SECONDS / 5:.0f} s")


def _delete(client, namespace: str, name: str) -> None:
    import kubernetes

    for delete in (lambda: client.batch_api.delete_namespaced_job(name, namespace, propagation_policy="Background"),
                   lambda: client.core_api.delete_namespaced_service(name, namespace)):
        try:
            delete()
        except kubernetes.client.ApiException as error:
            if error.status != 404:  # already gone is fine; anything else is worth a look, not a second failure
                dg.get_dagster_logger().warning(f"could not delete {namespace}/{name}: {error.reason}")
