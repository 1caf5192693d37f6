"""The main job on the embedded default: `python -m pipelines.demo` (what `make demo` runs).

Seeds the sample domains into the landing folder, registers every valid domain folder as a
partition, materializes base_model, the whole chain per domain and the cross-domain leaderboard in
a persistent Dagster instance (so `dagster dev` shows the runs afterwards), and prints a summary
table and the forgetting matrix. Unchanged domains are reused, not retrained, on a second run.
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import dagster as dg

from pipelines.definitions import defs
from pipelines.registration import register_domains
from pipelines.samples import seed_sample_domains
from resources.landing import LandingZone
from resources.lineage import instance_latest_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="*", help="only these domains (default: every folder in the landing root)")
    parser.add_argument("--no-seed", action="store_true", help="do not write the sample domains")
    args = parser.parse_args(argv)
    # The warm trainer server (resources/warm_trainer.py) imports torch and peft on the other core
    # while this process sets up the instance, builds base_model and cleans the first domain.
    defs.resources["compute"].warm_up_trainer()

    os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve()))
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(Path(__file__).resolve().parents[1] / "dagster.yaml", home / "dagster.yaml")
    instance = dg.DagsterInstance.get()
    landing = LandingZone()
    if not args.no_seed:
        seed_sample_domains(landing.root_path())
    valid, invalid = landing.domain_folders()
    for name in invalid:
        print(f"skipping landing folder {name!r}: not a valid domain key", file=sys.stderr)
    domains = args.domains or valid
    register_domains(instance, domains)

    started = time.perf_counter()
    _run(defs.resolve_job_def("base_model_job"), None, instance)
    results = {domain: _run(defs.resolve_job_def("domain_finetune_job"), domain, instance) for domain in domains}
    # One run for both (a run costs ~0.5 s here): the cross-domain board, and the registry promotion
    # that promote_after_training's sensor asks for when Dagster's daemon runs.
    finale = {dg.AssetKey("domain_leaderboard"), dg.AssetKey("adapter_registry")}
    _run(defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=finale), None, instance)
    print(_summary(instance, results))
    board = instance_latest_record(instance, "domain_leaderboard", None)
    if board:
        print("\nforgetting matrix (eval loss change against the base, per eval domain):")
        print(board.asset_materialization.metadata["forgetting_matrix"].value)
    print(f"\ndemo wall time {time.perf_counter() - started:.1f}s; DAGSTER_HOME={os.environ['DAGSTER_HOME']}")
    print("see it in the UI: make ui  (then open http://127.0.0.1:3000); serve the promoted adapters: make serve")
    return 0 if all(results.values()) else 1


def _run(job: dg.JobDefinition, partition: str | None, instance: dg.DagsterInstance) -> bool:
    label = partition or ", ".join(k.to_user_string() for k in job.asset_layer.selected_asset_keys) or job.name
    print(f"--- {label}: running {job.name}", flush=True)
    result = job.execute_in_process(
        instance=instance, partition_key=partition, raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    print(f"--- {label}: {'succeeded' if result.success else 'FAILED'} (run {result.run_id})", flush=True)
    return result.success


def _summary(instance: dg.DagsterInstance, results: dict[str, bool]) -> str:
    def meta(asset: str, domain: str, key: str):
        record = instance_latest_record(instance, asset, domain)
        value = record.asset_materialization.metadata.get(key) if record else None
        return value.value if value is not None else None

    header = f"{'domain':<12} {'kept':>6} {'quarantined':>11} {'clean':>6} {'train tokens':>12} {'tok/s':>8}  {'eval loss base -> adapter':<26} merged model"
    lines = [header, "-" * len(header)]
    for domain, ok in results.items():
        base, adapter = meta("adapter_evaluation", domain, "eval_loss_base"), meta("adapter_evaluation", domain, "eval_loss_adapter")
        losses = f"{base:.3f} -> {adapter:.3f}" if base is not None and adapter is not None else "-"
        rate = meta("qlora_adapter", domain, "tokens_per_second")
        lines.append(
            f"{domain:<12} {meta('raw_corpus', domain, 'rows_kept') or '-':>6} "
            f"{meta('raw_corpus', domain, 'rows_quarantined') if meta('raw_corpus', domain, 'rows_quarantined') is not None else '-':>11} "
            f"{meta('clean_corpus', domain, 'rows_clean') or '-':>6} "
            f"{meta('training_dataset', domain, 'train_tokens') or '-':>12} {f'{rate:,.0f}' if rate else '-':>8}  {losses:<26} "
            f"{(meta('merged_model', domain, 'path') if ok else None) or 'not merged (see the run in the UI)'}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
