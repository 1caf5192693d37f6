"""How long a landing-sensor tick takes: first look (hashes everything, within the per-tick cap),
idle, one file changed in a small domain, and one file changed in a big domain.

    python benchmarks/sensor_tick.py --domains 50 --files 20 --file-kb 256 --big-mb 4096 --big-file-mb 256

Runs the real sensor against a temporary Dagster instance and landing root. Like the daemon, every
run it requests is recorded in the instance (here as succeeded at once), so idle ticks are idle.
Prints a table and one last line of JSON.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.definitions import defs  # noqa: E402
from pipelines.sensors import landing_zone_sensor  # noqa: E402
from resources.base_model_source import BaseModelSource  # noqa: E402
from resources.landing import LandingZone  # noqa: E402

LINE = json.dumps({"text": "x" * 200}) + "\n"
PAST = time.time() - 3600


def write(path: Path, size: int, tag: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = (tag + LINE) * (1024 * 1024 // len(LINE))
    with open(path, "w") as out:
        for _ in range(size // len(block)):
            out.write(block)
        out.write(block[: size % len(block)])
    os.utime(path, (PAST, PAST))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--file-kb", type=int, default=256)
    parser.add_argument("--big-mb", type=int, default=4096, help="size of one big domain (0: none)")
    parser.add_argument("--big-file-mb", type=int, default=256)
    parser.add_argument("--cap-mb", type=int, default=2048, help="max_hash_bytes_per_tick, in MiB")
    parser.add_argument("--idle-ticks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        landing = Path(tmp) / "landing"
        for d in range(args.domains):
            for f in range(args.files):
                write(landing / f"domain-{d:03d}" / f"part-{f:03d}.jsonl", args.file_kb * 1024, f"{d}-{f}")
        big_files = args.big_mb // args.big_file_mb if args.big_mb else 0
        for f in range(big_files):
            write(landing / "big" / f"part-{f:03d}.jsonl", args.big_file_mb * 1024 * 1024, f"big-{f}")
        landing_zone = LandingZone(root=str(landing), max_hash_bytes_per_tick=args.cap_mb * 1024 * 1024)
        resources = {"landing": landing_zone, "base_model_source": BaseModelSource()}
        instance.report_runless_asset_event(dg.AssetMaterialization("base_model", metadata={"path": tmp}))
        cursor = None

        def tick() -> tuple[float, int]:
            nonlocal cursor
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources, definitions=defs)
            started = time.perf_counter()
            result = landing_zone_sensor(context)
            elapsed = time.perf_counter() - started
            for request in result.dynamic_partitions_requests:
                instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            for request in result.run_requests:  # what the daemon does, with runs that succeed at once
                tags = {**request.tags, "dagster/run_key": request.run_key}
                if request.partition_key:
                    tags["dagster/partition"] = request.partition_key
                instance.create_run_for_job(defs.resolve_job_def(request.job_name), tags=tags, status=dg.DagsterRunStatus.SUCCESS)
            cursor = result.cursor
            return elapsed, len(result.run_requests)

        first_ticks = []
        while not first_ticks or len(instance.get_runs()) < args.domains + bool(big_files):
            first_ticks.append(tick())
            if len(first_ticks) > 100:
                raise SystemExit("the first look did not finish in 100 ticks")
        tick()  # the runs have succeeded: the domains are done
        idle = [tick() for _ in range(args.idle_ticks)]
        small_file = landing / "domain-000" / "part-000.jsonl"
        write(small_file, args.file_kb * 1024 + len(LINE), "changed")
        small, small_runs = tick()
        big_change = big_runs = None
        if big_files:
            write(landing / "big" / "part-000.jsonl", args.big_file_mb * 1024 * 1024 + len(LINE), "changed")
            big_change, big_runs = tick()
        cache_bytes = sum(p.stat().st_size for p in Path(instance.root_directory, "loraline").rglob("*.json"))
    small_mb = args.domains * args.files * args.file_kb / 1024
    idle_s = statistics.median(t for t, _ in idle)
    print(f"landing: {args.domains} domains x {args.files} files = {small_mb:.0f} MB, plus one domain of "
          f"{big_files} x {args.big_file_mb} MB; hashing cap {args.cap_mb} MB per tick")
    print(f"{'tick':<34} {'seconds':>8} {'runs':>5}")
    for i, (seconds, runs) in enumerate(first_ticks):
        print(f"{f'first look, tick {i + 1}':<34} {seconds:>8.3f} {runs:>5}")
    print(f"{'idle (median)':<34} {idle_s:>8.3f} {max(r for _, r in idle):>5}")
    print(f"{'one small file changed':<34} {small:>8.3f} {small_runs:>5}")
    if big_files:
        print(f"{f'one {args.big_file_mb} MB file of the big domain':<34} {big_change:>8.3f} {big_runs:>5}")
    print(f"cursor {len(cursor)} bytes; digest cache {cache_bytes} bytes")
    print(json.dumps({"first_look_ticks": len(first_ticks), "first_look_max_tick_s": max(t for t, _ in first_ticks),
                      "idle_tick_s": idle_s, "small_change_tick_s": small, "big_change_tick_s": big_change,
                      "landing_mb": small_mb + big_files * args.big_file_mb, "runs_idle": max(r for _, r in idle),
                      "runs_small_change": small_runs, "runs_big_change": big_runs, "cursor_bytes": len(cursor),
                      "digest_cache_bytes": cache_bytes}))


if __name__ == "__main__":
    main()
