"""One domain's chain on a laptop setup against a team setup, on the same machine:

    python benchmarks/chain_storage.py [--rows 40] [--max-steps 10]

- local: the Dagster instance on SQLite (a fresh DAGSTER_HOME) and landing + artifacts on local disk;
- sqlite + s3: SQLite, landing + artifacts in an S3 bucket (the storage cost alone);
- team:  the instance on PostgreSQL (deploy/dagster.yaml, a throwaway server from
  tests/deploy/postgres_server.py) and landing + artifacts in an S3 bucket (moto's S3 server,
  tests/deploy/s3_server.py), reached through s3fs with the standard AWS variables.
  Without PostgreSQL's binaries, the team setup keeps SQLite and says so.

Both on loopback, so the figures are the cost of the code paths (manifests, hashing, uploads, a
database round trip per event), not of a network. Each setup runs in a fresh process: base_model,
the domain's chain (`support`, tiny training), then the same chain again over unchanged data (every
step reused), then, for the bucket, again with the local cache wiped (reuse decided from the bucket).
Prints a table and, last, one line of JSON.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "tests" / "deploy"
BUCKET = "loraline-bench"


def worker(root: Path, rows: int, max_steps: int, wipe_cache: bool) -> dict:
    """One setup, in this process (its environment is set by the parent)."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.registration import register_domains
    from pipelines.samples import seed_sample_domains

    landing = os.environ["LORALINE_LANDING_DIR"]
    seed_sample_domains(root / "seed", rows_per_domain=rows)
    if "://" in landing:
        from assets.common.object_store import filesystem

        fs, path = filesystem(landing)
        fs.put(str(root / "seed" / "support"), f"{path}/support", recursive=True)
    else:
        shutil.copytree(root / "seed" / "support", Path(landing) / "support")
    config = {"ops": {"qlora_adapter": {"config": {"max_steps": max_steps, "logging_steps": max_steps}}}}
    timings = {}
    with dg.DagsterInstance.get() as instance:
        register_domains(instance, ["support"])
        started = time.perf_counter()
        assert defs.resolve_job_def("base_model_job").execute_in_process(instance=instance).success
        timings["base_model_s"] = time.perf_counter() - started
        for label in ("chain_s", "rerun_s", *(["rerun_cold_cache_s"] if wipe_cache else [])):
            if label == "rerun_cold_cache_s":
                shutil.rmtree(os.environ["LORALINE_CACHE_DIR"])
            started = time.perf_counter()
            result = defs.resolve_job_def("domain_finetune_job").execute_in_process(
                instance=instance, partition_key="support", run_config=config, raise_on_error=False)
            timings[label] = time.perf_counter() - started
            if not result.success:
                raise SystemExit(f"{label}: the chain failed")
            if label == "chain_s":  # where the time went: each step's own duration
                timings["steps_s"] = {event.step_key: round(event.event_specific_data.duration_ms / 1000, 2)
                                      for event in result.all_events if event.event_type_value == "STEP_SUCCESS"}
        record = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("merged_model"), asset_partitions=["support"]), limit=1).records[0]
        timings["merged_model"] = record.asset_materialization.metadata["path"].value
    return timings


def run_setup(name: str, env: dict[str, str], root: Path, args: argparse.Namespace, dagster_yaml: Path | None = None) -> dict:
    """One setup in a fresh process, with its own DAGSTER_HOME (holding `dagster_yaml` when given) and cache."""
    (root / "home").mkdir(parents=True)
    if dagster_yaml is not None:
        shutil.copyfile(dagster_yaml, root / "home" / "dagster.yaml")
    env = {**os.environ, **env, "DAGSTER_HOME": str(root / "home"), "LORALINE_CACHE_DIR": str(root / "cache")}
    if dagster_yaml is not None:
        env.setdefault("LORALINE_COMPUTE_LOGS_DIR", str(root / "compute_logs"))  # deploy/dagster.yaml reads it
    env.pop("LORALINE_BASE_MODEL", None)
    command = [sys.executable, __file__, "--worker", str(root), "--rows", str(args.rows), "--max-steps", str(args.max_steps)]
    if "://" in env["LORALINE_ARTIFACTS_DIR"]:
        command.append("--wipe-cache")
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return {"setup": name, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=40, help="sample records landed for the domain")
    parser.add_argument("--max-steps", type=int, default=10, help="training steps (tiny: the storage paths are measured)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--wipe-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.rows, args.max_steps, args.wipe_cache)))
        return

    sys.path.insert(0, str(DEPLOY))
    from s3_server import running_s3

    results = []
    with tempfile.TemporaryDirectory(prefix="loraline-chain-storage-") as tmp, ExitStack() as stack:
        tmp = Path(tmp)
        local = {"LORALINE_LANDING_DIR": str(tmp / "local" / "landing"), "LORALINE_ARTIFACTS_DIR": str(tmp / "local" / "artifacts")}
        results.append(run_setup("sqlite + local disk", local, tmp / "local", args))
        s3 = stack.enter_context(running_s3(tmp / "moto.log"))
        s3.make_bucket(BUCKET)
        team = {**s3.env, "LORALINE_LANDING_DIR": f"s3://{BUCKET}/landing", "LORALINE_ARTIFACTS_DIR": f"s3://{BUCKET}/artifacts"}
        results.append(run_setup("sqlite + s3 (moto)", {**team, "LORALINE_LANDING_DIR": f"s3://{BUCKET}/landing-1",
                                                         "LORALINE_ARTIFACTS_DIR": f"s3://{BUCKET}/artifacts-1"}, tmp / "s3", args))
        database = "sqlite"
        try:
            from postgres_server import PostgresUnavailable, running_postgres

            try:
                postgres = stack.enter_context(running_postgres(tmp / "pg"))
                team |= postgres.env
                database = "postgresql"
            except PostgresUnavailable as error:
                print(f"PostgreSQL unavailable ({error}); the team setup keeps SQLite", file=sys.stderr)
        except ImportError:
            print("tests/deploy/postgres_server.py not found; the team setup keeps SQLite", file=sys.stderr)
        dagster_yaml = REPO / "deploy" / "dagster.yaml" if database == "postgresql" else None
        results.append(run_setup(f"{database} + s3 (moto)", team, tmp / "team", args, dagster_yaml))

    print(f"{'setup':<28} {'base_model':>10} {'chain':>8} {'rerun':>8} {'rerun, cache wiped':>19}")
    for row in results:
        wiped = f"{row['rerun_cold_cache_s']:.1f}s" if "rerun_cold_cache_s" in row else "-"
        print(f"{row['setup']:<28} {row['base_model_s']:>9.1f}s {row['chain_s']:>7.1f}s {row['rerun_s']:>7.1f}s {wiped:>19}")
    steps = sorted({step for row in results for step in row["steps_s"]})
    print(f"\n{'first chain, per step':<28}" + "".join(f" {row['setup'][:22]:>23}" for row in results))
    for step in steps:
        print(f"{step:<28}" + "".join(f" {row['steps_s'].get(step, 0):>22.1f}s" for row in results))
    print(f"merged model: {results[-1]['merged_model']}")
    print(json.dumps({"benchmark": "chain_storage", "rows": args.rows, "max_steps": args.max_steps, "results": results}))


if __name__ == "__main__":
    main()
