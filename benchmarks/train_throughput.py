"""loraline's training step side by side with transformers' Trainer and a plain PyTorch loop.

    python benchmarks/train_throughput.py            # CPU, ~11 M-parameter Llama, skewed lengths
    python benchmarks/train_throughput.py --quick    # the same, fewer steps (< 3 minutes here)
    python benchmarks/train_throughput.py --gpu      # ~1.1 B Llama (TinyLlama shape), seq 2048, bf16 compute

Every contender trains LoRA adapters on the same 4-bit NF4 base, on the same examples, with the
same micro-batch size, steps and optimiser, each in its own process (so peak memory is its own):

- loraline (packing 'auto' -> blocks), and loraline with 'by_length' and 'off' (padded) batches;
- trainer: transformers `Trainer`, random batches padded to their longest (its default collation);
- torch_loop: a plain PyTorch loop over the same padded batches.

Figures: effective tokens/s (real tokens, padding excluded, over the whole training loop), pad share
(computed positions holding padding), peak RSS (and peak GPU memory with --gpu), and model FLOP
utilisation = real tokens/s x 4 x linear-layer parameters (forward + input-gradient backward of the
frozen base; attention scores left out) / the measured matmul peak of this machine. --gpu adds a
bf16 LoRA (no quantisation) run to compare its peak GPU memory with QLoRA's. The last line is JSON.
"""

import argparse
import json
import math
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
CONTENDERS = ("loraline", "loraline_by_length", "loraline_padded", "trainer", "torch_loop")


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


def matmul_peak_flops(device: str) -> float:
    """Best observed dense matmul rate (float32 on CPU, bfloat16 on CUDA), FLOP/s."""
    import torch

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    n = 8192 if device == "cuda" else 1024
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    best = 0.0
    for _ in range(8):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - start))
    return best


def padded_batches(lengths: list[int], batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Random micro-batches, as a default DataLoader draws them (epochs chained)."""
    rng, out = random.Random(seed), []
    while len(out) < steps:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        out += [order[s : s + batch_size] for s in range(0, len(order) - batch_size + 1, batch_size)]
    return out[:steps]


def run_contender(name: str, workdir: Path, steps: int, batch_size: int, device: str) -> dict:
    import torch
    from datasets import load_from_disk

    from assets.settings.training import QLoraConfig
    from assets.training.recipe import build_model, train_qlora

    data = load_from_disk(str(workdir / "train"))
    lengths = list(data["length"])
    settings = dict(max_steps=steps, batch_size=batch_size, logging_steps=max(steps // 4, 1), save_steps=10**6,
                    lora_dropout=0.0, compute_dtype="bfloat16" if device == "cuda" else "float32")
    if name.startswith("loraline"):
        packing = {"loraline": "auto", "loraline_by_length": "by_length", "loraline_padded": "off"}[name]
        report = train_qlora(workdir / "base", data, workdir / f"adapter-{name}", workdir / f"ckpt-{name}",
                             QLoraConfig(**settings, packing=packing), device, log=lambda line: print(line, file=sys.stderr))
        result = {"real_tokens": report.tokens_seen, "seconds": report.duration_s, "pad_share": report.pad_share, "layout": report.packing}
    else:
        config = QLoraConfig(**settings)
        if name == "lora_bf16":  # GPU only: the same LoRA on an unquantised bf16 base, for peak memory
            from peft import LoraConfig, get_peft_model
            from transformers import AutoModelForCausalLM

            from assets.models.targets import model_skeleton, resolve_targets

            base = AutoModelForCausalLM.from_pretrained(workdir / "base", dtype=torch.bfloat16, device_map={"": device})
            targets = resolve_targets(model_skeleton(workdir / "base"), list(config.target_modules)).targets
            model = get_peft_model(base, LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, target_modules=targets, task_type="CAUSAL_LM"))
        else:
            model, _, _ = build_model(workdir / "base", config, device)
        batches = padded_batches(lengths, batch_size, steps, seed=config.seed)
        if name == "trainer":
            result = _trainer(model, data, steps, config, device)
        else:
            ids, labels = data["input_ids"], data["labels"]  # read once, outside the timed loop (as loraline does)
            rows = lambda batch: [{"input_ids": ids[i], "labels": labels[i]} for i in batch]  # noqa: E731
            result = _torch_loop(model, batches, rows, config, device)
            real = sum(lengths[i] for b in batches for i in b)
            result |= {"real_tokens": real, "pad_share": 1 - real / sum(len(b) * max(lengths[i] for i in b) for b in batches)}
        result["layout"] = "padded"
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _torch_loop(model, batches, rows, config, device) -> dict:
    import torch
    from transformers import get_scheduler

    from assets.models.batches import pad_batch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    scheduler = get_scheduler("cosine", optimizer, math.ceil(0.05 * len(batches)), len(batches))
    model.train()
    start = time.perf_counter()
    for batch in batches:
        inputs = {k: v.to(device) for k, v in pad_batch(rows(batch), 258).items()}
        model(**inputs, use_cache=False).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - start}


def _trainer(model, data, steps, config, device) -> dict:
    """transformers' Trainer with its defaults: random sampler, padding to the longest in a batch."""
    from transformers import Trainer, TrainingArguments

    from assets.models.batches import pad_batch

    seen = {"real": 0, "computed": 0}

    def collate(features):  # Trainer draws its own batches: count what it really computes
        batch = pad_batch(features, 258)
        seen["real"] += int(batch["attention_mask"].sum())
        seen["computed"] += batch["attention_mask"].numel()
        return batch

    args = TrainingArguments(
        output_dir=str(Path(tempfile.mkdtemp())), max_steps=steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=0.05, max_grad_norm=config.max_grad_norm,
        logging_steps=10**6, save_strategy="no", seed=config.seed, use_cpu=device == "cpu", report_to="none",
        disable_tqdm=True, dataloader_num_workers=0, bf16=device == "cuda",
    )
    trainer = Trainer(model=model, args=args, train_dataset=data.select_columns(["input_ids", "labels"]), data_collator=collate)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "real_tokens": seen["real"], "pad_share": 1 - seen["real"] / seen["computed"]}


def linear_parameters(workdir: Path) -> int:
    from transformers import AutoConfig

    c = AutoConfig.from_pretrained(workdir / "base")
    kv = c.hidden_size // c.num_attention_heads * c.num_key_value_heads
    per_layer = c.hidden_size * (2 * c.hidden_size + 2 * kv) + 3 * c.hidden_size * c.intermediate_size
    return c.num_hidden_layers * per_layer + c.hidden_size * c.vocab_size  # + lm_head


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer steps: under 3 minutes on our 2-core CPU")
    parser.add_argument("--gpu", action="store_true", help="~1.1 B Llama, sequences up to 2048, on CUDA")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--contender", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = "cuda" if args.gpu else "cpu"
    steps = args.steps or (8 if args.quick else 30)
    if args.contender:  # child process: one contender, JSON on stdout
        print(json.dumps(run_contender(args.contender, Path(args.workdir), steps, args.batch_size, device)))
        return

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prepare(workdir, args.gpu, examples=max(400, steps * args.batch_size * 2))
        peak = matmul_peak_flops(device)
        flops_per_token = 4 * linear_parameters(workdir)
        results = {}
        for name in CONTENDERS + (("lora_bf16",) if args.gpu else ()):
            command = [sys.executable, __file__, "--contender", name, "--workdir", str(workdir), "--steps", str(steps), "--batch-size", str(args.batch_size)]
            command += ["--gpu"] if args.gpu else []
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
            results[name]["tokens_per_s"] = results[name]["real_tokens"] / results[name]["seconds"]

    base = results["trainer"]["tokens_per_s"]
    print(f"{'contender':<20}{'layout':>10}{'real tok/s':>12}{'vs trainer':>11}{'pad share':>11}{'peak RSS MB':>13}{'MFU':>8}"
          + (f"{'peak GPU MB':>13}" if args.gpu else ""))
    for name, r in results.items():
        mfu = r["tokens_per_s"] * flops_per_token / peak
        print(f"{name:<20}{r['layout']:>10}{r['tokens_per_s']:>12,.0f}{r['tokens_per_s'] / base:>10.2f}x{r['pad_share']:>10.1%}"
              f"{r['peak_rss_mb']:>13,.0f}{mfu:>8.2%}" + (f"{r['peak_gpu_mb']:>13,.0f}" if args.gpu else ""))
    print(f"device {device}, torch threads {torch.get_num_threads()}, measured matmul peak {peak / 1e9:,.1f} GFLOP/s, "
          f"{flops_per_token / 1e6:.1f} MFLOP per token, {steps} steps x batch {args.batch_size}")
    ours = results["loraline"]
    summary = {
        "tokens_per_s": round(ours["tokens_per_s"], 1),
        "baseline_tokens_per_s": round(base, 1),
        "torch_loop_tokens_per_s": round(results["torch_loop"]["tokens_per_s"], 1),
        "speedup_vs_trainer": round(ours["tokens_per_s"] / base, 3),
        "effective_speedup_vs_padded": round(ours["tokens_per_s"] / results["loraline_padded"]["tokens_per_s"], 3),
        "pad_share": round(ours["pad_share"], 4),
        "baseline_pad_share": round(results["trainer"]["pad_share"], 4),
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "mfu": round(ours["tokens_per_s"] * flops_per_token / peak, 4),
        "layout": ours["layout"],
        "device": device,
    }
    if args.gpu:
        # Same padded batches, same loop: only the base's storage differs.
        summary |= {"peak_gpu_mb_qlora": round(results["torch_loop"]["peak_gpu_mb"], 1), "peak_gpu_mb_lora_bf16": round(results["lora_bf16"]["peak_gpu_mb"], 1)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
