"""`training_dataset`: chat-templated, tokenized, split train/eval, saved as Arrow."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.common.atomic import atomic_directory
from assets.expectations.checks import check_results
from assets.models.chat_format import chat_format
from assets.models.loading import load_tokenizer
from assets.partitions import domain_partitions
from assets.settings.tokenization import TokenizationConfig
from assets.tokenization.expectations import CHECKS, run_dataset_checks
from assets.tokenization.streaming import Streamed, stream_tokenize
from assets.tokenization.tokenizing import ROUND_TRIP_SAMPLES, RoundTrip, clamp_to_context, round_trip
from resources.landing import LandingZone
from resources.lineage import begin, latest_materialization
from resources.storage import ArtifactStore


class TokenizationRunConfig(dg.Config, TokenizationConfig):
    """Tokenization settings, editable in the launchpad (domain.yaml section `tokenization`)."""


UPSTREAM = {"clean_corpus": True, "base_model": False}  # asset -> per domain


@dg.asset(
    partitions_def=domain_partitions,
    deps=list(UPSTREAM),
    group_name="tokenization",
    kinds={"transformers", "datasets"},
    code_version="3",
    check_specs=[
        *[dg.AssetCheckSpec(name, asset="training_dataset", blocking=blocking, description=text)
          for name, (text, blocking) in CHECKS.items()],
        dg.AssetCheckSpec("chat_template_round_trip", asset="training_dataset", blocking=True,
                          description="Sampled chat examples supervise exactly their answers, each with the "
                          "model's end-of-turn token."),
    ],
)
def training_dataset(context: dg.AssetExecutionContext, config: TokenizationRunConfig, landing: LandingZone, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Records rendered with the base model's own chat template (loss on the assistants' answers and
    their end-of-turn token, and on plain text), long conversations split at turn boundaries, split
    train/eval by content hash, saved with `datasets`; rows with nothing to learn are kept aside
    with their reason (`rejected.parquet`)."""
    domain = context.partition_key
    step = begin(context, UPSTREAM, landing.effective_settings(domain, "tokenization", config), gate="clean_corpus")
    if step.reused:
        return step.reused
    rows = step.path("clean_corpus") / "rows.parquet"
    settings, clamped = _within_context_length(context, step.settings)
    tokenizer = load_tokenizer(step.path("base_model"))
    fmt = chat_format(tokenizer)
    location = artifacts.new_location(context, "training_dataset")
    try:
        # Streamed: record batches of the clean parquet, worker processes, train/ and eval/ written
        # as they come; memory stays flat whatever the domain's size.
        with atomic_directory(location) as staging:
            tokenized = stream_tokenize(rows, step.path("base_model"), settings, staging, log=context.log.info)
            tokenized.rejected.write_parquet(staging / "rejected.parquet")
    except ValueError as error:
        raise dg.Failure(f"domain {domain!r}: {error}") from error
    if rejected := tokenized.stats["rows_rejected"]:
        context.log.warning(f"domain {domain!r}: {rejected} of {tokenized.stats['rows']} rows yield nothing to learn; "
                            f"kept with their reason in {location / 'rejected.parquet'}")
    # The round trip samples the first chat rows only: read just those.
    chats = pl.scan_parquet(rows).filter(pl.col("kind") != "text").head(ROUND_TRIP_SAMPLES).collect()
    checks = [*check_results(context, "training_dataset", run_dataset_checks(tokenized.profile, settings)),
              _round_trip_check(round_trip(chats, tokenizer, settings, fmt))]
    template = fmt.describe() | {"pad_token": tokenizer.pad_token}
    return step.publish(_metadata(location, tokenized, template, settings, clamped), checks)


def _metadata(location: Path, tokenized: Streamed, template: dict, settings: TokenizationConfig, clamped: str | None) -> dict:
    stats = tokenized.stats
    return {
        "path": dg.MetadataValue.path(str(location)), **stats,
        "truncated_share": stats["truncated_examples"] / max(stats["train_examples"] + stats["eval_examples"], 1),
        "template": dg.MetadataValue.json(template),
        "rejections": _rejections_table(tokenized.rejected),
        "settings": dg.MetadataValue.json(settings.model_dump() | ({"max_seq_len_clamped": clamped} if clamped else {})),
    }


def _within_context_length(context: dg.AssetExecutionContext, requested: TokenizationConfig) -> tuple[TokenizationConfig, str | None]:
    """The settings with max_seq_len clamped to the context length base_model recorded (and the warning)."""
    limit = latest_materialization(context, "base_model", None).metadata.get("context_length")
    settings, clamped = clamp_to_context(requested, limit.value if limit is not None else None)
    if clamped:
        context.log.warning(f"domain {context.partition_key!r}: {clamped}")
    return settings, clamped


def _round_trip_check(trip: RoundTrip) -> dg.AssetCheckResult:
    changes = (f"; the tokenizer does not decode {len(trip.text_changes)} back verbatim (its own normalisation, the same "
               f"when served): {trip.text_changes[0]}" if trip.text_changes else "")
    return dg.AssetCheckResult(
        check_name="chat_template_round_trip",
        passed=not trip.failures,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{trip.checked - len(trip.failures)} of {trip.checked} sampled chat examples supervise exactly their "
        "answers and end-of-turn tokens" + (f"; first failure {trip.failures[0]}" if trip.failures else "") + changes,
        metadata={"failures": dg.MetadataValue.json(trip.failures[:10]), "text_changes": dg.MetadataValue.json(trip.text_changes[:10])},
    )


def _rejections_table(rejected: pl.DataFrame) -> dg.MetadataValue:
    """The first rejected rows (file, line, reason) for the UI; all of them are in rejected.parquet."""
    columns = ("source_file", "line", "reason")
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c: row[c] for c in columns}) for row in rejected.head(20).iter_rows(named=True)],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "int" if c == "line" else "string") for c in columns]),
    )
