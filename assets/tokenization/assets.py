"""`training_dataset`: chat-templated, tokenized, split train/eval, saved as Arrow."""

import dagster as dg
import polars as pl

from assets.common.atomic import atomic_directory
from assets.partitions import domain_partitions
from assets.quality.checks import check_results
from assets.tokenization.expectations import CHECKS, run_dataset_checks
from assets.tokenization.tokenizing import TokenizationConfig, round_trip_failures, tokenize_corpus
from assets.training.loading import load_tokenizer
from resources.landing import LandingZone
from resources.lineage import logical_version, published, require_passed_checks, reuse_if_unchanged, upstream_path
from resources.storage import ArtifactStore


class TokenizationRunConfig(dg.Config, TokenizationConfig):
    """Tokenization settings, editable in the launchpad (domain.yaml section `tokenization`)."""


@dg.asset(
    partitions_def=domain_partitions,
    deps=["clean_corpus", "base_model"],
    group_name="tokenization",
    kinds={"transformers", "datasets"},
    code_version="2",
    check_specs=[
        *[dg.AssetCheckSpec(name, asset="training_dataset", blocking=blocking, description=text)
          for name, (text, blocking) in CHECKS.items()],
        dg.AssetCheckSpec("chat_template_round_trip", asset="training_dataset", blocking=True,
                          description="Sample chat examples decode back to their rendered text and end with EOS."),
    ],
)
def training_dataset(context: dg.AssetExecutionContext, config: TokenizationRunConfig, landing: LandingZone, artifacts: ArtifactStore) -> dg.MaterializeResult:
    """Records rendered with the base tokenizer's chat template (loss on assistant turns and plain
    text only, every example ending in EOS), split train/eval by content hash, saved with `datasets`."""
    domain = context.partition_key
    require_passed_checks(context, "clean_corpus")
    settings = landing.effective_settings(domain, "tokenization", config)
    version = logical_version(context, {"clean_corpus": True, "base_model": False}, settings.model_dump())
    if reused := reuse_if_unchanged(context, version):
        return reused
    clean = pl.read_parquet(upstream_path(context, "clean_corpus") / "rows.parquet")
    tokenizer = load_tokenizer(upstream_path(context, "base_model", partitioned=False))
    try:
        tokenized = tokenize_corpus(clean, tokenizer, settings)
    except ValueError as error:
        raise dg.Failure(f"domain {domain!r}: {error}") from error
    location = artifacts.new_location(context, "training_dataset")
    with atomic_directory(location) as staging:
        tokenized.train.save_to_disk(str(staging / "train"))
        tokenized.eval.save_to_disk(str(staging / "eval"))
    stats = tokenized.stats
    checked, mismatches = round_trip_failures(clean, tokenizer, settings)
    examples = stats["train_examples"] + stats["eval_examples"] + stats["unsupervised_examples"]
    truncated_share = stats["truncated_examples"] / max(examples, 1)
    if stats["unsupervised_examples"]:
        context.log.error(f"domain {domain!r}: {stats['unsupervised_examples']} examples have no supervised token "
                          "(a prompt longer than max_seq_len?); they were left out and the domain stops")
    checks = [
        *check_results(context, "training_dataset", run_dataset_checks(tokenized.profile, settings)),
        dg.AssetCheckResult(
            check_name="chat_template_round_trip",
            passed=not mismatches,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"{checked - len(mismatches)} of {checked} sampled chat examples decode back to their "
            "rendered text and end with EOS" + (f"; first failure {mismatches[0]}" if mismatches else ""),
            metadata={"failures": dg.MetadataValue.json(mismatches[:10])},
        ),
    ]
    metadata = {"path": dg.MetadataValue.path(str(location)), **stats, "truncated_share": truncated_share,
                "settings": dg.MetadataValue.json(settings.model_dump())}
    return published(metadata, version, checks)
