"""What the forgetting matrix costs with N domains: every cell computed (as before its cell cache)
against a board where one domain changed (its row and column computed, the rest reused).

    python benchmarks/leaderboard_cells.py [--domains 3 6] [--eval-rows 24]

Built-in tiny base in 4-bit, N LoRA adapters with random non-zero weights (rank 8 on every
attention and MLP projection), N byte-level eval splits. Times `cross_domain_losses` three ways:
  full     nothing known: N^2 + N cells computed (what every materialization cost before);
  first    a first board: the diagonal and base row from the evaluations, N(N-1) computed;
  changed  one domain's adapter and eval split changed: its row and column, 2(N-1) computed.
Prints the CPU flags and the dtype; last line JSON.
"""

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from assets.evaluation.leaderboard import DomainEval, cache_from, cells_table, cross_domain_losses
from assets.models.loading import cpu_flags, pick_compute_dtype

FLAGS = ("avx2", "avx512_bf16", "amx_bf16")


def eval_split(seed: int, rows: int):
    import datasets

    from assets.models.batches import IGNORE_INDEX

    rng, data = random.Random(seed), {"input_ids": [], "labels": []}
    for _ in range(rows):
        ids = [256] + [rng.randrange(97, 123) for _ in range(rng.randrange(32, 192))] + [257]
        data["input_ids"].append(ids)
        data["labels"].append([IGNORE_INDEX] * (len(ids) // 4) + ids[len(ids) // 4:])
    return datasets.Dataset.from_dict(data)


def adapter(root: Path, name: str, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from assets.foundation.tiny_llama import build_model

    torch.manual_seed(seed)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    get_peft_model(build_model(), LoraConfig(r=8, lora_alpha=16, target_modules=targets, init_lora_weights=False)).save_pretrained(root / name)
    return root / name


def timed(run) -> tuple[float, dict]:
    """(wall seconds, report); CPU seconds of this process are printed too (busy cores inflate wall time)."""
    started, cpu = time.perf_counter(), time.process_time()
    report = run()
    print(f"  {time.perf_counter() - started:.1f}s wall, {time.process_time() - cpu:.1f}s cpu, {report.sources()}", flush=True)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", nargs="+", type=int, default=[3, 6])
    parser.add_argument("--eval-rows", type=int, default=24)
    args = parser.parse_args()
    from assets.foundation.tiny_llama import save_tiny_llama

    dtype = pick_compute_dtype("auto", "cpu")
    flags = {flag: flag in cpu_flags() for flag in FLAGS}
    print(f"cpu flags {flags}; dtype {str(dtype).removeprefix('torch.')}; {os.cpu_count()} cpus; load average {os.getloadavg()[0]:.2f}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = save_tiny_llama(root / "base")
        for n in args.domains:
            names = [f"d{i}" for i in range(n)]
            splits = {name: eval_split(i, args.eval_rows) for i, name in enumerate(names)}
            dirs = {name: adapter(root, f"{name}-{n}", i) for i, name in enumerate(names)}

            def domains(evaluated: dict, changed: str | None = None) -> dict[str, DomainEval]:
                found = {}
                for name in names:
                    version = "v2" if name == changed else "v1"
                    split = eval_split(1000, args.eval_rows) if name == changed else splits[name]
                    found[name] = DomainEval(dirs[name] if name != changed else dirs[names[-1]], f"{name}-a-{version}", f"{name}-e-{version}",
                                             load_eval=lambda split=split: split, evaluated=evaluated.get(name, {}))
                return found

            full_s, full = timed(lambda: cross_domain_losses(base, "b", domains({}), {}, dtype, "cpu"))
            evaluated = {a: {"base": full.base_loss[a], "adapter": full.loss[a][a]} for a in names}
            first_s, first = timed(lambda: cross_domain_losses(base, "b", domains(evaluated), {}, dtype, "cpu"))
            changed_evaluated = dict(evaluated, **{names[0]: {"base": 5.0, "adapter": 4.0}})  # as its new evaluation would say
            changed_s, changed = timed(lambda: cross_domain_losses(base, "b", domains(changed_evaluated, names[0]), cache_from(cells_table(first)),
                                                                   dtype, "cpu"))
            row = {"domains": n, "full_s": round(full_s, 2), "full_cells": full.sources()["computed"],
                   "first_s": round(first_s, 2), "first": first.sources(), "changed_s": round(changed_s, 2), "changed": changed.sources()}
            print(f"{n} domains: every cell {full_s:.1f}s ({row['full_cells']} computed); first board {first_s:.1f}s ({first.sources()}); "
                  f"one domain changed {changed_s:.1f}s ({changed.sources()})")
            results.append(row)
    print(json.dumps({"cpu_flags": flags, "dtype": str(dtype).removeprefix("torch."), "eval_rows": args.eval_rows, "results": results}))


if __name__ == "__main__":
    main()
