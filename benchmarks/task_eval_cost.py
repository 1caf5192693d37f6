"""What task evaluation (greedy answers to held-out prompts, exact match, ROUGE-L) adds to adapter_evaluation.

    python benchmarks/task_eval_cost.py [--domains support cooking] [--task-examples 0 8 32]

Seeds the sample domains in a temporary folder, trains each domain briefly through qlora_adapter (a
real Dagster instance, built-in tiny model), then times `evaluate_adapter` on the domain's eval split
with each task_examples value (0 = loss, perplexity and bits per byte only). Last line JSON.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import dagster as dg
from datasets import load_from_disk

from assets.evaluation.metrics import evaluate_adapter
from assets.settings.evaluation import EvaluationConfig
from pipelines.definitions import defs
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains

UP_TO_ADAPTER = {dg.AssetKey(a) for a in ("raw_corpus", "clean_corpus", "quarantined_rows", "training_dataset", "qlora_adapter")}


def latest_path(instance: dg.DagsterInstance, asset: str, domain: str | None) -> Path:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[domain] if domain else None), limit=1).records
    return Path(records[0].asset_materialization.metadata["path"].value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="+", default=["support", "cooking"])
    parser.add_argument("--task-examples", nargs="+", type=int, default=[0, 32])
    parser.add_argument("--max-steps", type=int, default=30)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.update(LORALINE_LANDING_DIR=str(root / "landing"), LORALINE_ARTIFACTS_DIR=str(root / "artifacts"))
        os.environ.pop("LORALINE_BASE_MODEL", None)
        seed_sample_domains(root / "landing")
        with dg.instance_for_test() as instance:
            register_domains(instance, args.domains)
            assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
            job = defs.resolve_job_def("domain_finetune_job").get_subset(asset_selection=UP_TO_ADAPTER)
            training = {"ops": {"qlora_adapter": {"config": {"max_steps": args.max_steps, "logging_steps": args.max_steps}}}}
            base = latest_path(instance, "base_model", None)
            for domain in args.domains:
                assert job.execute_in_process(instance=instance, partition_key=domain, run_config=training).success
                eval_split = load_from_disk(str(latest_path(instance, "training_dataset", domain) / "eval"))
                adapter = latest_path(instance, "qlora_adapter", domain)
                for n in args.task_examples:
                    started = time.perf_counter()
                    report = evaluate_adapter(base, adapter, eval_split, EvaluationConfig(task_examples=n), "cpu")
                    seconds = time.perf_counter() - started
                    numbers = {k: round(v, 4) for k, v in report.numbers().items() if k.startswith(("task_", "bits_"))}
                    results[f"{domain}/task_examples={n}"] = {"seconds": round(seconds, 1), "eval_examples": len(eval_split), **numbers}
                    print(f"{domain:10s} task_examples={n:3d}: adapter_evaluation body {seconds:6.1f}s  {numbers}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
