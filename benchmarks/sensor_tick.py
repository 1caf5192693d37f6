"""How long a landing-sensor tick takes: first look (hashes everything), idle, one file changed.

    python benchmarks/sensor_tick.py --domains 50 --files 20 --file-kb 256

Runs the real sensor against a temporary Dagster instance and landing root, and prints a table
and one last line of JSON.
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=50)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--file-kb", type=int, default=256)
    parser.add_argument("--idle-ticks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
        landing = Path(tmp) / "landing"
        line = json.dumps({"text": "x" * 200}) + "\n"
        past = time.time() - 3600
        for d in range(args.domains):
            for f in range(args.files):
                path = landing / f"domain-{d:03d}" / f"part-{f:03d}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{d}-{f}\n".join([line] * (args.file_kb * 1024 // len(line))))
                os.utime(path, (past, past))
        resources = {"landing": LandingZone(root=str(landing)), "base_model_source": BaseModelSource()}
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
            cursor = result.cursor
            return elapsed, len(result.run_requests)

        first, first_runs = tick()
        idle = [tick() for _ in range(args.idle_ticks)]
        changed_file = landing / "domain-000" / "part-000.jsonl"
        changed_file.write_text(changed_file.read_text() + line)
        os.utime(changed_file, (past, past))
        change, change_runs = tick()
    mb = args.domains * args.files * args.file_kb / 1024
    idle_s = statistics.median(t for t, _ in idle)
    print(f"{'tick':<24} {'seconds':>8} {'runs':>5}")
    print(f"{'first look (hash all)':<24} {first:>8.3f} {first_runs:>5}")
    print(f"{'idle (median)':<24} {idle_s:>8.3f} {max(r for _, r in idle):>5}")
    print(f"{'one file changed':<24} {change:>8.3f} {change_runs:>5}")
    print(f"landing: {args.domains} domains x {args.files} files = {mb:.0f} MB; cursor {len(cursor)} bytes")
    print(json.dumps({"first_tick_s": first, "idle_tick_s": idle_s, "changed_tick_s": change, "landing_mb": mb,
                      "runs_first": first_runs, "runs_idle": max(r for _, r in idle), "runs_changed": change_runs, "cursor_bytes": len(cursor)}))


if __name__ == "__main__":
    main()
