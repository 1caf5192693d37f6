"""Experiment tracking (optional): each training run in MLflow, tagged with its Dagster lineage.

Off by default. When on, `qlora_adapter` opens one MLflow run per trained adapter (its settings as
params, the loss curve as per-step metrics, the adapter folder as artifacts) and `adapter_evaluation`
adds its eval numbers to the run of the adapter it scored. Tags carry the Dagster run id, asset,
domain, code version and every data version, so an MLflow run leads back to its Dagster run and
lineage; the MLflow run id goes into the Dagster materialization's metadata, so one goes the other way.

A tracking failure (server down, store unwritable) never costs a trained adapter: it is logged as
a warning and the step carries on, unless `required` says to fail. `mlflow` is imported only when
tracking is on (it costs ~1 s), so loading the definitions stays fast and tracking off imports nothing.
"""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
from pydantic import Field

from resources.lineage import Step, latest_materialization, upstream_data_version
from resources.storage import ArtifactStore

URI_VARIABLE = "LORALINE_MLFLOW_TRACKING_URI"  # names the store and turns tracking on
MLFLOW_VARIABLE = "MLFLOW_TRACKING_URI"  # MLflow's own: names the store when tracking is on, turns nothing on
STORE_FOLDER = "mlflow"  # beside the artifacts root: <root>/../mlflow/mlflow.db and .../artifacts
TAG_PREFIX = "dagster."
ADAPTER_VERSION_TAG = "dagster.data_version.qlora_adapter"  # how an evaluation finds its adapter's run
METRICS_PER_BATCH, PARAMS_PER_BATCH = 1000, 100  # MLflow's limits per log_batch call
PARAM_CHARS = 6000  # MLflow's limit on a param value
METRIC_NAMES = {"loss": "train_loss"}  # history keys renamed beside the eval_loss_* an evaluation adds


class ExperimentTracking(dg.ConfigurableResource):
    """MLflow tracking of training runs and their evaluations; off unless `enabled` is true or
    $LORALINE_MLFLOW_TRACKING_URI is set (both read when a step runs, never at import)."""

    enabled: bool = Field(
        False,
        description="Log each training run and its evaluation to MLflow. Off by default; setting "
        "$LORALINE_MLFLOW_TRACKING_URI also turns it on.",
    )
    tracking_uri: str = Field(
        "",
        description="MLflow tracking URI: a server (http://host:5000) or a local SQLite store "
        "(sqlite:////abs/path/mlflow.db, artifacts in an `artifacts` folder beside the file). Empty: "
        "$LORALINE_MLFLOW_TRACKING_URI, else $MLFLOW_TRACKING_URI, else SQLite in `mlflow/` beside the artifacts root "
        "(data/mlflow/mlflow.db). "
        "MLflow 3 refuses its old file: store by default, hence SQLite.",
    )
    experiment: str = Field(
        "loraline",
        min_length=1,
        max_length=250,
        description="MLflow experiment every domain logs to; the domain is a tag (dagster.partition), so runs of "
        "all domains compare in one table.",
    )
    required: bool = Field(
        False,
        description="Fail the step when tracking fails. Off: a warning with the reason, and the adapter is "
        "published untracked (a tracking outage never costs a trained adapter).",
    )
    request_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds an HTTP request to a tracking server may take (MLflow's own default is 120).",
    )
    request_retries: int = Field(
        1,
        ge=0,
        le=10,
        description="Retries of a failed HTTP request to a tracking server (MLflow's default is 7 with back-off, "
        "minutes when the server is down; a step should not wait that long for bookkeeping).",
    )

    def is_on(self) -> bool:
        return self.enabled or bool(os.environ.get(URI_VARIABLE))

    def resolved_uri(self) -> str:
        return self.tracking_uri or os.environ.get(URI_VARIABLE) or os.environ.get(MLFLOW_VARIABLE) or default_store_uri()

    def log_training(self, step: Step, report: dict, adapter_dir: Path, **params: Any) -> dict:
        """One MLflow run for a trained adapter: its settings, `params` and the base model as params,
        the Dagster lineage as tags, the loss history as per-step metrics, the folder as artifacts. Returns the
        metadata that points to it ({} when tracking is off)."""
        if not self.is_on():
            return {}
        context = step.context
        versions = {asset: upstream_data_version(context, asset, partitioned) for asset, partitioned in step.upstream.items()}
        tags = lineage_tags(context, versions | {"qlora_adapter": step.version})
        base = latest_materialization(context, "base_model", None).metadata
        all_params = {**flat_params(step.settings.model_dump()), **{key: str(value) for key, value in params.items()},
                      **{f"base_model.{key}": str(base[key].value) for key in ("spec", "source", "revision") if key in base}}

        def log(client: Any) -> dict:
            from mlflow.entities import RunStatus

            run = client.create_run(self._experiment_id(client), run_name=f"{context.partition_key}-{context.run_id[:8]}", tags=tags)
            run_id = run.info.run_id
            try:
                for start in range(0, len(all_params), PARAMS_PER_BATCH):
                    client.log_batch(run_id, params=_params(dict(list(all_params.items())[start:start + PARAMS_PER_BATCH])))
                for batch in _batches(step_metrics(report)):
                    client.log_batch(run_id, metrics=batch)
                client.log_batch(run_id, metrics=_metrics(summary_metrics(report), step=int(report["steps"])))
                client.log_artifacts(run_id, str(adapter_dir), "adapter")
            except Exception:
                client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
                raise
            client.set_terminated(run_id)
            return self._pointer(run.info.experiment_id, run_id)

        return self._guarded(context, "training run", log)

    def log_evaluation(self, step: Step, numbers: dict[str, float | int | bool], evaluation_dir: Path) -> dict:
        """Eval numbers (as metrics) and the evaluation folder (as artifacts) added to the MLflow run
        of the adapter this evaluation scored, found by its data version tag."""
        if not self.is_on():
            return {}
        context = step.context
        adapter_version = upstream_data_version(context, "qlora_adapter")

        def log(client: Any) -> dict:
            runs = client.search_runs([self._experiment_id(client)], filter_string=f"tags.`{ADAPTER_VERSION_TAG}` = '{adapter_version}'",
                                      order_by=["attributes.start_time DESC"], max_results=1)
            if not runs:
                context.log.warning(f"domain {context.partition_key!r}: no MLflow run of adapter version {adapter_version[:12]} "
                                    f"in experiment {self.experiment!r} (trained before tracking was on?); evaluation not tracked")
                return {}
            run_id = runs[0].info.run_id
            client.log_batch(run_id, metrics=_metrics({key: float(value) for key, value in numbers.items()}, step=0),
                             tags=_tags({f"{TAG_PREFIX}evaluation.run_id": context.run_id,
                                         f"{TAG_PREFIX}data_version.adapter_evaluation": step.version}))
            client.log_artifacts(run_id, str(evaluation_dir), "evaluation")
            return self._pointer(runs[0].info.experiment_id, run_id)

        return self._guarded(context, "evaluation", log)

    def _experiment_id(self, client: Any) -> str:
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return client.create_experiment(self.experiment, artifact_location=artifact_location(self.resolved_uri()))
        except MlflowException:  # another domain's step created it meanwhile (concurrent runs); else raise
            experiment = client.get_experiment_by_name(self.experiment)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _pointer(self, experiment_id: str, run_id: str) -> dict:
        uri = self.resolved_uri()
        pointer = {"mlflow_run_id": run_id, "mlflow_experiment": self.experiment, "mlflow_tracking_uri": public_uri(uri)}
        if urlsplit(uri).scheme in ("http", "https"):
            pointer["mlflow_run_url"] = dg.MetadataValue.url(f"{public_uri(uri).rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}")
        return pointer

    def _guarded(self, context: dg.AssetExecutionContext, what: str, log: Callable[[Any], dict]) -> dict:
        uri = self.resolved_uri()
        try:
            with self._bounded_requests():
                try:
                    from mlflow import MlflowClient
                except ImportError as error:
                    raise ImportError("mlflow is not installed; install the tracking extra: pip install 'loraline[tracking]'") from error
                if uri.startswith("sqlite:///"):
                    _sqlite_file(uri).parent.mkdir(parents=True, exist_ok=True)
                return log(MlflowClient(tracking_uri=uri))
        # Any failure of the tracking store (connection refused, HTTP 5xx, a locked or unwritable
        # database) is bookkeeping lost, not a failed step: say why and carry on, unless `required`.
        except Exception as error:
            reason = f"MLflow tracking of the {what} failed ({public_uri(uri)}): {type(error).__name__}: {str(error)[:500]}"
            if self.required:
                raise dg.Failure(f"domain {context.partition_key!r}: {reason} (tracking is required)") from error
            context.log.warning(f"domain {context.partition_key!r}: {reason}; carrying on untracked (set required to fail instead)")
            return {"mlflow_error": reason}

    @contextmanager
    def _bounded_requests(self) -> Iterator[None]:
        """MLflow's HTTP client reads its timeout and retries from the environment on each request:
        set them for these calls only (a value the user exported wins)."""
        wanted = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(self.request_timeout_s) or 1), "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(self.request_retries)}
        added = [name for name in wanted if name not in os.environ]
        os.environ.update({name: wanted[name] for name in added})
        try:
            yield
        finally:
            for name in added:
                os.environ.pop(name, None)


def default_store_uri() -> str:
    return f"sqlite:///{ArtifactStore().root_path().parent / STORE_FOLDER / 'mlflow.db'}"


def _sqlite_file(uri: str) -> Path:
    return Path(uri.removeprefix("sqlite:///"))


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a SQLite store (MLflow's default is ./mlruns
    under whatever the working directory is); a server decides for itself (None)."""
    return (_sqlite_file(uri).parent / "artifacts").as_uri() if uri.startswith("sqlite:///") else None


def public_uri(uri: str) -> str:
    """The URI without a user name or password, fit for metadata and logs."""
    parts = urlsplit(uri)
    if not parts.netloc or "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def lineage_tags(context: dg.AssetExecutionContext, versions: dict[str, str]) -> dict[str, str]:
    """Where a run came from in Dagster: run, asset, domain, code version, data versions."""
    return {
        f"{TAG_PREFIX}run_id": context.run_id,
        f"{TAG_PREFIX}asset": context.asset_key.to_user_string(),
        f"{TAG_PREFIX}partition": context.partition_key,
        f"{TAG_PREFIX}code_version": str(context.assets_def.code_versions_by_key[context.asset_key]),
        **{f"{TAG_PREFIX}data_version.{asset}": version for asset, version in versions.items()},
    }


def flat_params(settings: dict, prefix: str = "") -> dict[str, str]:
    """Nested settings as MLflow params ('a.b': 'value'); lists as their JSON-ish text."""
    flat: dict[str, str] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= flat_params(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = str(value)[:PARAM_CHARS]
    return flat


def step_metrics(report: dict) -> list[tuple[str, float, int]]:
    """(name, value, optimiser step) of every number the trainer kept per logged step (every
    logging_steps): loss (as train_loss), learning_rate, and whatever else a history point holds."""
    return [(METRIC_NAMES.get(key, key), float(value), int(point["step"])) for point in report["loss_history"]
            for key, value in point.items() if key != "step" and isinstance(value, (int, float))]


def summary_metrics(report: dict) -> dict[str, float]:
    keys = ("final_train_loss", "tokens_seen", "tokens_per_second", "duration_s", "peak_memory_mb", "pad_share", "trainable_parameters")
    return {key: float(report[key]) for key in keys if key in report}


def _batches(points: list[tuple[str, float, int]]) -> Iterator[list]:
    from mlflow.entities import Metric

    stamp = _now_ms()
    for start in range(0, len(points), METRICS_PER_BATCH):
        yield [Metric(name, value, stamp, step) for name, value, step in points[start:start + METRICS_PER_BATCH]]


def _metrics(values: dict[str, float], step: int) -> list:
    from mlflow.entities import Metric

    stamp = _now_ms()
    return [Metric(name, value, stamp, step) for name, value in values.items()]


def _params(values: dict[str, str]) -> list:
    from mlflow.entities import Param

    return [Param(key, value) for key, value in values.items()]


def _tags(values: dict[str, str]) -> list:
    from mlflow.entities import RunTag

    return [RunTag(key, value) for key, value in values.items()]


def _now_ms() -> int:
    return int(time.time() * 1000)
