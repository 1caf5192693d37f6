"""Packing throughput: everything training does with the lengths before its first step, at scale.

    python benchmarks/pack_throughput.py --examples 1000000              # skewed mix, the issue's goal: < 30 s
    python benchmarks/pack_throughput.py --examples 1000000 --mix narrow # one example per block: by_length wins

What is timed (assets/training/packing.py, as recipe.setup_data and train() call it):

- choose_layout('auto'): plans 'blocks' (first-fit-decreasing rows) and 'by_length', lays out epoch 0
  of each and compares their pad shares;
- StepStream: epoch 0 (what the step count is taken from), then the pad share of that epoch (the
  training log's first line), then a step in epoch 1 (the second epoch is laid out on demand).

Mixes: 'skewed' is benchmarks/train_throughput.py's `skewed_lengths` (median ~70 of 512, long tail,
block 512); 'narrow' is the sample domain's shape (550-890 tokens, one example fills a block).

Then, on --compare examples of the same mix (not timed as above), the packing is checked against the
reference: the first-fit-decreasing loop packing.py had before (copied below) must give the same rows
(so the same pad share), and both must place every example exactly once with no row over block_len.
The validity of the full-size packing is checked the same way. Packing runs no tensor code: the
"dtype" is that of the lengths (int64). Last line: JSON.
"""

import argparse
import json
import random
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from train_throughput import skewed_lengths  # noqa: E402  (the same long-tailed mix as the training benchmark)

from assets.models.loading import cpu_flags  # noqa: E402
from assets.training.packing import StepStream, choose_layout, pack_blocks, pad_share_of  # noqa: E402


def lengths_of(mix: str, n: int, seed: int) -> list[int]:
    if mix == "skewed":
        return skewed_lengths(n, 512, seed)
    rng = random.Random(seed)
    return [rng.randint(550, 890) for _ in range(n)]


def reference_pack_blocks(lengths: list[int], block_len: int) -> list[list[int]]:
    """packing.py's first-fit decreasing before this benchmark: O(examples x rows), the oracle."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        n = lengths[i]
        for r, free in enumerate(room):
            if free >= n:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(block_len - n)
    return rows


def valid(rows: list[list[int]], lengths: list[int], block_len: int) -> bool:
    """Every example exactly once, no row over block_len (numpy, so a million examples check fast)."""
    ids = np.fromiter((i for row in rows for i in row), dtype=np.int64)
    row_of = np.repeat(np.arange(len(rows)), [len(row) for row in rows])
    widths = np.bincount(row_of, weights=np.asarray(lengths, dtype=np.int64)[ids], minlength=len(rows))
    once = len(ids) == len(lengths) and bool((np.bincount(ids, minlength=len(lengths)) == 1).all())
    return once and bool((widths <= block_len).all())


def rows_share(rows: list[list[int]], lengths: list[int], block_len: int) -> float:
    return pad_share_of([rows], lengths, block_len)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run(mix: str, examples: int, batch_size: int, per_step: int, seed: int) -> dict:
    lengths = lengths_of(mix, examples, seed)
    rss_before = rss_mb()
    parts: list[tuple[str, float]] = []

    def timed(name, fn):
        started = time.perf_counter()
        out = fn()
        parts.append((name, time.perf_counter() - started))
        return out

    layout = timed("choose_layout('auto'): plan blocks + by_length, pad shares", lambda: choose_layout("auto", lengths, batch_size, seed))
    stream = timed("StepStream: epoch 0", lambda: StepStream(layout, lengths, seed, per_step))
    share = timed("pad share of epoch 0 (training's log line)", lambda: pad_share_of(stream.first_epoch, lengths, layout.block_len, layout.widths))
    first_of_epoch_1 = -(-len(stream.first_epoch) // per_step)
    timed("StepStream: epoch 1 (a step in it)", lambda: stream.step(first_of_epoch_1))
    rows = [row for batch in stream.first_epoch for row in batch]
    return {"mix": mix, "examples": examples, "mode": layout.mode, "block_len": layout.block_len, "rows": len(rows),
            "micro_batches": len(stream.first_epoch), "pad_share": share, "parts": parts,
            "seconds": sum(s for _, s in parts), "valid": valid(rows, lengths, layout.block_len or max(lengths)),
            "rss_before_mb": rss_before, "peak_rss_mb": rss_mb()}


def compare(mix: str, examples: int, seed: int) -> dict:
    lengths = lengths_of(mix, examples, seed)
    block = max(lengths) if mix == "narrow" else 512
    started = time.perf_counter()
    reference = reference_pack_blocks(lengths, block)
    reference_s = time.perf_counter() - started
    started = time.perf_counter()
    rows = pack_blocks(lengths, block)
    packed_s = time.perf_counter() - started
    return {"examples": examples, "block_len": block, "reference_s": reference_s, "pack_blocks_s": packed_s,
            "reference_pad_share": rows_share(reference, lengths, block), "pad_share": rows_share(rows, lengths, block),
            "identical_rows": rows == reference, "reference_valid": valid(reference, lengths, block), "valid": valid(rows, lengths, block)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1_000_000)
    parser.add_argument("--mix", choices=("skewed", "narrow"), default="skewed")
    parser.add_argument("--compare", type=int, default=20_000, help="examples for the check against the reference packing; 0 skips it")
    parser.add_argument("--batch-size", type=int, default=8, help="QLoraConfig.batch_size")
    parser.add_argument("--per-step", type=int, default=4, help="micro-batches per optimiser step (gradient_accumulation x processes)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    flags = sorted(cpu_flags() & {"avx2", "avx512_bf16", "amx_bf16"})
    print(f"cpu flags: {', '.join(flags) or 'none of avx2/avx512_bf16/amx_bf16'}; dtype: int64 lengths (packing runs no tensor code)")
    result = run(args.mix, args.examples, args.batch_size, args.per_step, args.seed)
    print(f"\n{args.examples:,} examples, {args.mix} mix -> {result['mode']}: {result['rows']:,} rows"
          + (f" of {result['block_len']} tokens" if result["block_len"] else "") + f", {result['micro_batches']:,} micro-batches")
    print(f"{'part':<62} {'seconds':>8}")
    for name, seconds in result["parts"]:
        print(f"{name:<62} {seconds:>8.2f}")
    print(f"{'total':<62} {result['seconds']:>8.2f}")
    print(f"pad share {result['pad_share']:.3%}; {args.examples / result['seconds']:,.0f} examples/s; "
          f"every example once, no row over the block: {result['valid']}; "
          f"peak RSS {result['peak_rss_mb']:.0f} MB ({result['rss_before_mb']:.0f} MB with the lengths alone)")
    check = compare(args.mix, args.compare, args.seed + 1) if args.compare else None
    if check:
        print(f"\nagainst the reference first-fit decreasing on {check['examples']:,} examples (block {check['block_len']}):")
        print(f"  reference {check['reference_s']:.2f} s, pad share {check['reference_pad_share']:.4%}, valid {check['reference_valid']}")
        print(f"  pack_blocks {check['pack_blocks_s']:.3f} s, pad share {check['pad_share']:.4%}, valid {check['valid']}; "
              f"identical rows: {check['identical_rows']}")
    print(json.dumps({"seconds": round(result["seconds"], 3), "examples": args.examples, "pad_share": round(result["pad_share"], 6),
                      "mix": args.mix, "mode": result["mode"], "rows": result["rows"], "valid": result["valid"],
                      "examples_per_s": round(args.examples / result["seconds"]), "peak_rss_mb": round(result["peak_rss_mb"]),
                      "parts": {name: round(s, 3) for name, s in result["parts"]}, "cpu_flags": flags, "dtype": "int64",
                      "compare": check}))


if __name__ == "__main__":
    main()
