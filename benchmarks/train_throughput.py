"""What the pipeline trains with, side by side with transformers' Trainer and a plain PyTorch loop.

    python benchmarks/train_throughput.py            # CPU, ~11 M-parameter Llama, skewed lengths
    python benchmarks/train_throughput.py --quick    # the same, fewer steps and no lever table
    python benchmarks/train_throughput.py --gpu      # ~1.1 B Llama (TinyLlama shape), seq 2048, on CUDA

Every contender trains LoRA adapters on the same 4-bit NF4 base, on the same examples, with the same
micro-batch size, steps, dropout and optimiser settings, each in its own process (so peak memory is
its own). `loraline` is what the pipeline runs: compute_dtype 'auto' (bf16 on CPUs with AVX512-BF16
or AMX and on CUDA, float32 elsewhere), the default lora_dropout, packing 'auto'. Also run:

- loraline_fp32 and trainer_fp32: the same in float32 (the AVX2-only CPUs' configuration);
- trainer: transformers `Trainer` with its defaults (random batches padded to their longest), in the
  same dtype as loraline (bf16=True when 'auto' picks bf16: its autocast);
- torch_loop: a plain PyTorch loop over the Trainer's padded batches, same dtype handling;
- loraline_by_length and loraline_padded: the other two layouts;
- the lever table (not with --quick): loraline with every lever of assets/training/compute.py and
  packing.py's row widths switched off, then switched back on one at a time.

Figures: effective tokens/s (real tokens, padding excluded, over the whole training loop), pad share
(computed positions holding padding), peak RSS, and MFU: the FLOPs the step needs for the real tokens
(assets/training/flops.py: base linears forward and input-gradient backward, LoRA forward and
backward, the head, causal attention per example) per second, over the best matmul rate of the
compute dtype measured in this run over the model's own GEMM shapes and a large square one. The CPU
flags, dtype and thread count are printed; the last line is JSON.
"""

import argparse
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CPU_SPEC = dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4)
GPU_SPEC = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4, vocab_size=32000)
SHOWN_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# The lever table: each row switches one more lever back on, from everything off to what ships.
# Rows of several widths (packing.row_widths) are no lever on a CPU any more: with per-example attention
# one width trains faster (compute.row_width_classes).
LEVERS = ("bf16_forward", "sparse_dropout", "segment_attention", "fused_adamw", "fused_lora")
LEVER_TEXT = {
    "bf16_forward": "frozen weights in bf16 + autocast over the forward",
    "sparse_dropout": "LoRA dropout drawn only where it drops",
    "segment_attention": "per-example attention instead of SDPA over whole packed rows",
    "fused_adamw": "fused AdamW",
    "fused_lora": "LoRA update fused into one matmul (no clone, scale or add passes)",
}
MAIN = ("loraline", "loraline_fp32", "trainer", "trainer_fp32", "torch_loop", "loraline_by_length", "loraline_padded")


def skewed_lengths(n: int, longest: int, seed: int = 0) -> list[int]:
    """A realistic long-tailed mix: median ~70 tokens (1/7 of 512), a few near the limit."""
    rng = random.Random(seed)
    scale = longest / 512
    return [max(8, min(longest, int(scale * (16 + rng.lognormvariate(4.0, 0.9))))) for _ in range(n)]


def prepare(workdir: Path, gpu: bool, examples: int) -> None:
    """The base model (random weights, Llama shape) and a tokenized skewed dataset, on disk."""
    import datasets
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from assets.foundation.tiny_llama import build_tokenizer

    spec = GPU_SPEC if gpu else CPU_SPEC
    longest = 2048 if gpu else 512
    tokenizer = build_tokenizer(longest)
    config = LlamaConfig(vocab_size=spec.get("vocab_size", 320), max_position_embeddings=longest, bos_token_id=256,
                         eos_token_id=257, pad_token_id=258, tie_word_embeddings=False, **{k: v for k, v in spec.items() if k != "vocab_size"})
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(workdir / "base")
    tokenizer.save_pretrained(workdir / "base")
    rng = random.Random(1)
    rows = {"input_ids": [], "labels": [], "length": []}
    for n in skewed_lengths(examples, longest):
        ids = [256] + [rng.randrange(97, 123) for _ in range(n - 2)] + [257]
        prompt = n // 4
        rows["input_ids"].append(ids)
        rows["labels"].append([-100] * prompt + ids[prompt:])
        rows["length"].append(n)
    datasets.Dataset.from_dict(rows).save_to_disk(str(workdir / "train"))


def matmul_peak(device: str, dtype, shapes: list[tuple[int, int, int]]) -> tuple[float, str]:
    """Best dense matmul rate (FLOP/s) of `dtype` over the given (m, k, n) shapes and a large square
    one, and the shape that reached it: the MFU denominator."""
    import torch

    square = 8192 if device == "cuda" else 2048
    best, where = 0.0, ""
    for m, k, n in [*shapes, (square, square, square)]:
        a, b = torch.randn(m, k, dtype=dtype, device=device), torch.randn(k, n, dtype=dtype, device=device)
        reps = max(1, int(2e9 // (2 * m * k * n)))  # about 2 GFLOP a timing
        for _ in range(6):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(reps):
                a @ b
            if device == "cuda":
                torch.cuda.synchronize()
            rate = reps * 2 * m * k * n / (time.perf_counter() - start)
            if rate > best:
                best, where = rate, f"{m}x{k}x{n}"
    return best, where


def gemm_shapes(workdir: Path, tokens: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of the model's linear layers for a micro-batch of `tokens`: forward and input-gradient."""
    from transformers import AutoConfig

    from assets.training.flops import DecoderShape

    shape = DecoderShape.of(AutoConfig.from_pretrained(workdir / "base"))
    pairs = {*shape.linears().values(), (shape.hidden, shape.vocab)}
    return sorted({(tokens, i, o) for i, o in pairs} | {(tokens, o, i) for i, o in pairs})


def padded_batches(lengths: list[int], batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Random micro-batches, as a default DataLoader draws them (epochs chained)."""
    rng, out = random.Random(seed), []
    while len(out) < steps:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        out += [order[s : s + batch_size] for s in range(0, len(order) - batch_size + 1, batch_size)]
    return out[:steps]


def switch_off(levers: set[str]) -> None:
    """In this (child) process, undo the named levers of compute.py, packing.py and recipe.py."""
    import contextlib

    import torch

    from assets.training import compute, dropout, fused_lora

    if "bf16_forward" in levers:
        compute.keep_frozen_weights_in = lambda model, dtype: 0
        compute.autocast = lambda device, dtype: contextlib.nullcontext()
    if "sparse_dropout" in levers:
        dropout.install_sparse_dropout = lambda model: 0
    if "segment_attention" in levers:
        compute.attention_for = lambda *args, **kwargs: None  # the model's own: SDPA for Llama
    if "fused_lora" in levers:
        fused_lora.install_fused_lora = lambda model: 0
    if "fused_adamw" in levers:
        adamw = torch.optim.AdamW
        torch.optim.AdamW = lambda *args, **kwargs: adamw(*args, **{**kwargs, "fused": None})


def run_contender(name: str, workdir: Path, steps: int, batch_size: int, device: str) -> dict:
    import torch
    from datasets import load_from_disk

    from assets.settings.training import QLoraConfig
    from assets.training.recipe import build_model, train_qlora

    data = load_from_disk(str(workdir / "train"))
    lengths = list(data["length"])
    dtype = "float32" if name.endswith("_fp32") else "auto"
    settings = dict(max_steps=steps, batch_size=batch_size, logging_steps=max(steps // 4, 1), save_steps=10**6, compute_dtype=dtype)
    if name.startswith("lever"):  # lever<k>: the first k levers on, the rest off
        switch_off(set(LEVERS[int(name.removeprefix("lever")):]))
    if name.startswith(("loraline", "lever")):
        packing = {"loraline_by_length": "by_length", "loraline_padded": "off"}.get(name, "auto")
        config = QLoraConfig(**settings, packing=packing)
        report = train_qlora(workdir / "base", data, workdir / f"adapter-{name}", workdir / f"ckpt-{name}", config, device,
                             log=lambda line: print(line, file=sys.stderr))
        result = {"real_tokens": report.tokens_seen, "seconds": report.duration_s, "pad_share": report.pad_share,
                  "layout": report.packing, "dtype": report.compute_dtype, "used": _used_lengths(report, data, config, device)}
    else:
        config = QLoraConfig(**settings)
        if name == "lora_bf16":  # GPU only: the same LoRA on an unquantised bf16 base, for peak memory
            from peft import LoraConfig, get_peft_model
            from transformers import AutoModelForCausalLM

            from assets.models.targets import model_skeleton, resolve_targets

            base = AutoModelForCausalLM.from_pretrained(workdir / "base", dtype=torch.bfloat16, device_map={"": device})
            targets = resolve_targets(model_skeleton(workdir / "base"), list(config.target_modules)).targets
            model = get_peft_model(base, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, target_modules=targets, task_type="CAUSAL_LM"))
            compute_dtype = torch.bfloat16
        else:
            model, _, compute_dtype = build_model(workdir / "base", config, device)
        batches = padded_batches(lengths, batch_size, steps, seed=config.seed)
        if name.startswith("trainer"):
            result = _trainer(model, data, steps, config, device, compute_dtype)
        else:
            ids, labels = data["input_ids"], data["labels"]  # read once, outside the timed loop (as loraline does)
            rows = lambda batch: [{"input_ids": ids[i], "labels": labels[i]} for i in batch]  # noqa: E731
            result = _torch_loop(model, batches, rows, config, device, compute_dtype)
            real = sum(lengths[i] for b in batches for i in b)
            result |= {"real_tokens": real, "pad_share": 1 - real / sum(len(b) * max(lengths[i] for i in b) for b in batches),
                       "used": [lengths[i] for b in batches for i in b]}
        result |= {"layout": "padded", "dtype": str(compute_dtype).removeprefix("torch.")}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _used_lengths(report, data, config, device) -> list[int]:
    """Lengths of the examples a loraline run trained on (for the FLOP count), from the same stream
    of micro-batches the recipe walked (a pure function of the lengths and the seed)."""
    from assets.training.recipe import setup_data

    stream = setup_data(data, config, world=1, device=device)
    used = [stream.lengths[i] for step in range(report.steps) for batch in stream.step(step) for row in batch for i in row]
    assert sum(used) == report.tokens_seen, "the replayed stream is not the one trained on"
    return used


def _torch_loop(model, batches, rows, config, device, dtype) -> dict:
    import torch
    from transformers import get_scheduler

    from assets.models.batches import pad_batch
    from assets.training.compute import autocast

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    scheduler = get_scheduler("cosine", optimizer, math.ceil(0.05 * len(batches)), len(batches))
    model.train()
    start = time.perf_counter()
    for batch in batches:
        inputs = {k: v.to(device) for k, v in pad_batch(rows(batch), 258).items()}
        with autocast(device, dtype):
            loss = model(**inputs, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start}


def _trainer(model, data, steps, config, device, dtype) -> dict:
    """transformers' Trainer with its defaults: random sampler, padding to the longest in a batch;
    bf16=True (its autocast) when the compute dtype is bf16."""
    import torch
    from transformers import Trainer, TrainingArguments

    from assets.models.batches import pad_batch

    seen = {"real": 0, "computed": 0, "used": []}

    def collate(features):  # Trainer draws its own batches: count what it really computes
        batch = pad_batch(features, 258)
        seen["real"] += int(batch["attention_mask"].sum())
        seen["computed"] += batch["attention_mask"].numel()
        seen["used"] += [len(f["input_ids"]) for f in features]
        return batch

    args = TrainingArguments(
        output_dir=str(Path(tempfile.mkdtemp())), max_steps=steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=0.05, max_grad_norm=config.max_grad_norm,
        logging_steps=10**6, save_strategy="no", seed=config.seed, use_cpu=device == "cpu", report_to="none",
        disable_tqdm=True, dataloader_num_workers=0, bf16=dtype == torch.bfloat16,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data.select_columns(["input_ids", "labels"]), data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "real_tokens": seen["real"], "pad_share": 1 - seen["real"] / seen["computed"], "used": seen["used"]}


def cpu_flags_shown() -> list[str]:
    from assets.models.loading import cpu_flags

    flags = cpu_flags()
    return [f for f in SHOWN_FLAGS if f in flags]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps, no lever table")
    parser.add_argument("--gpu", action="store_true", help="~1.1 B Llama, sequences up to 2048, on CUDA")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = "cuda" if args.gpu else "cpu"
    steps = args.steps or (10 if args.quick else 30)
    if args.contender:  # child process: one contender, JSON on stdout
        print(json.dumps(run_contender(args.contender, Path(args.workdir), steps, args.batch_size, device)))
        return

    import torch
    from transformers import AutoConfig

    from assets.models.loading import pick_compute_dtype
    from assets.settings.training import QLoraConfig
    from assets.training.flops import DecoderShape, training_flops

    names = list(MAIN) + ([] if args.quick or args.gpu else [f"lever{k}" for k in range(len(LEVERS))])
    names += ["lora_bf16"] if args.gpu else []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prepare(workdir, args.gpu, examples=max(400, steps * args.batch_size * 2))
        shape = DecoderShape.of(AutoConfig.from_pretrained(workdir / "base"))
        auto = pick_compute_dtype("auto", device)
        shapes = gemm_shapes(workdir, tokens=args.batch_size * 96)  # about a micro-batch of the mix (mean ~96 tokens)
        peaks = {dtype: matmul_peak(device, dtype, shapes) for dtype in {auto, torch.float32}}
        results = {}
        for name in names:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            command = [sys.executable, __file__, "--contender", name, "--workdir", str(workdir), "--steps", str(steps), "--batch-size", str(args.batch_size)]
            command += ["--gpu"] if args.gpu else []
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    config = QLoraConfig()
    targets = list(shape.linears())  # 'all-linear': every projection of the decoder layers
    for r in results.values():
        r["tokens_per_s"] = r["real_tokens"] / r["seconds"]
        flops = training_flops(shape, r.pop("used"), config.lora_rank, targets).total
        peak = peaks[getattr(torch, r["dtype"])][0]
        r["mfu"] = flops / r["seconds"] / peak

    base = results["trainer"]["tokens_per_s"]
    print(f"{'contender':<20}{'dtype':>10}{'layout':>10}{'real tok/s':>12}{'vs trainer':>11}{'pad share':>11}{'peak RSS MB':>13}{'MFU':>8}"
          + (f"{'peak GPU MB':>13}" if args.gpu else ""))
    for name in [n for n in names if not n.startswith("lever")]:
        r = results[name]
        print(f"{name:<20}{r['dtype']:>10}{r['layout']:>10}{r['tokens_per_s']:>12,.0f}{r['tokens_per_s'] / base:>10.2f}x{r['pad_share']:>10.1%}"
              f"{r['peak_rss_mb']:>13,.0f}{r['mfu']:>8.1%}" + (f"{r['peak_gpu_mb']:>13,.0f}" if args.gpu else ""))
    levers = [n for n in names if n.startswith("lever")] + (["loraline"] if not args.quick and not args.gpu else [])
    if levers:
        print(f"\nlevers (compute dtype {str(auto).removeprefix('torch.')}; each row adds one lever to the row above)")
        print(f"{'':<55}{'real tok/s':>12}{'gain':>8}{'MFU':>8}")
        previous = None
        for k, name in enumerate(levers):
            r = results[name]
            label = "all levers off (as before this change)" if k == 0 else f"+ {LEVER_TEXT[LEVERS[k - 1]]}"
            gain = f"{r['tokens_per_s'] / previous:>7.2f}x" if previous else f"{'':>8}"
            print(f"{label:<55}{r['tokens_per_s']:>12,.0f}{gain}{r['mfu']:>8.1%}")
            previous = r["tokens_per_s"]
    ours = results["loraline"]
    print(f"\ndevice {device}, CPU flags {' '.join(cpu_flags_shown()) or '-'}, compute dtype 'auto' -> {str(auto).removeprefix('torch.')}, "
          f"torch threads {torch.get_num_threads()}, {steps} steps x batch {args.batch_size}")
    for dtype, (peak, where) in peaks.items():
        print(f"matmul peak {str(dtype).removeprefix('torch.')}: {peak / 1e9:,.1f} GFLOP/s (at {where})")
    summary = {
        "tokens_per_s": round(ours["tokens_per_s"], 1),
        "speedup_vs_trainer": round(ours["tokens_per_s"] / base, 3),
        "mfu": round(ours["mfu"], 4),
        "compute_dtype": ours["dtype"],
        "pad_share": round(ours["pad_share"], 4),
        "baseline_tokens_per_s": round(base, 1),
        "fp32_tokens_per_s": round(results["loraline_fp32"]["tokens_per_s"], 1),
        "fp32_speedup_vs_trainer": round(results["loraline_fp32"]["tokens_per_s"] / results["trainer_fp32"]["tokens_per_s"], 3),
        "fp32_mfu": round(results["loraline_fp32"]["mfu"], 4),
        "torch_loop_tokens_per_s": round(results["torch_loop"]["tokens_per_s"], 1),
        "baseline_pad_share": round(results["trainer"]["pad_share"], 4),
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "layout": ours["layout"],
        "device": device,
        "cpu_flags": cpu_flags_shown(),
        "threads": torch.get_num_threads(),
        "levers": {name: round(results[name]["tokens_per_s"], 1) for name in levers},
    }
    if args.gpu:
        # Same padded batches, same loop: only the base's storage differs.
        summary |= {"peak_gpu_mb_qlora": round(results["torch_loop"]["peak_gpu_mb"], 1), "peak_gpu_mb_lora_bf16": round(results["lora_bf16"]["peak_gpu_mb"], 1)}
    print(json.dumps(summary))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
