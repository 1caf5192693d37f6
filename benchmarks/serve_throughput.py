"""One base + N adapters behind `loraline serve`, against switching adapters and against merged models.

    python benchmarks/serve_throughput.py                       # 4 domains x 4 requests, 32 tokens each
    python benchmarks/serve_throughput.py --domains 8 --requests-per-domain 8 --max-tokens 64

A registry is built in a temporary folder (the built-in tiny Llama base, N LoRA adapters of rank 8 on
every linear projection, random non-zero weights) and served by the installed `loraline serve` in
its own process on a free loopback port. Three ways to answer the same N x R greedy requests:

- mixed:     every request sent at once: the batcher serves rows for different domains in one
             forward pass (peft's per-row adapter_names);
- switching: one domain at a time (its R requests at once, then the next domain): what a server
             that holds one active adapter does;
- merged:    in this process, one merged full-precision model per domain, its R requests in one
             `generate` batch (no adapter work at all), domain after domain; no HTTP, so it flatters merged.

Memory: parameter bytes of one base (as served) + N adapters, against N merged full-precision
models; and the server process's resident memory (VmRSS) after loading. Last line: JSON.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "serving"))
PROMPT = "Tell me about the rings of Saturn and how they formed."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def send_all(url: str, requests: list[dict]) -> tuple[float, int]:
    """Send every request at once; (seconds, completion tokens)."""
    import httpx

    def one(body: dict) -> int:
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
        response.raise_for_status()
        return response.json()["usage"]["completion_tokens"]

    start = time.perf_counter()
    with ThreadPoolExecutor(max(1, len(requests))) as pool:
        tokens = sum(pool.map(one, requests))
    return time.perf_counter() - start, tokens


def merged_run(base: dict, adapters: dict[str, Path], per_domain: int, max_tokens: int, dtype: str) -> tuple[float, int, int]:
    """(seconds, tokens, bytes of one merged model) generating each domain's batch on its merged model."""
    import torch
    from peft import PeftModel

    from assets.models.loading import load_full_precision_base, load_tokenizer

    tokenizer = load_tokenizer(Path(base["path"]))
    ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"].repeat(per_domain, 1)
    seconds, tokens, size = 0.0, 0, 0
    for adapter in adapters.values():
        model = PeftModel.from_pretrained(load_full_precision_base(Path(base["path"]), getattr(torch, dtype), "cpu"), str(adapter)).merge_and_unload()
        size = sum(p.numel() * p.element_size() for p in model.parameters())
        with torch.no_grad():  # warm-up, untimed, as the server was warmed up
            model.generate(input_ids=ids[:1], max_new_tokens=2, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        seconds += time.perf_counter() - start
        tokens += (out[:, ids.shape[1]:] != tokenizer.pad_token_id).sum().item()
    return seconds, tokens, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=4)
    parser.add_argument("--requests-per-domain", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--precision", choices=("4bit", "full"), default="4bit")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--hidden-size", type=int, default=512, help="base width (a multiple of 64; the built-in default is 128)")
    parser.add_argument("--layers", type=int, default=4, help="base decoder blocks")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads in the server and here (0: torch's default); 1 keeps busy cores from stalling its thread pool")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server inherits it
        import torch

        torch.set_num_threads(args.threads)

    import httpx
    import tiny_registry
    from safetensors import safe_open

    from assets.models.loading import cpu_flags

    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    print(f"cpu flags: {', '.join(flags) or '-'}; {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}: other work skews "
          f"every figure); precision {args.precision}, compute dtype {args.dtype}")
    work = Path(tempfile.mkdtemp(prefix="loraline-serve-bench-"))
    domains = [f"domain{i}" for i in range(args.domains)]
    shape = {"hidden_size": args.hidden_size, "intermediate_size": args.hidden_size * 8 // 3 // 64 * 64 or 64,
             "num_hidden_layers": args.layers, "num_attention_heads": 8, "num_key_value_heads": 4}
    registry, base, adapters = tiny_registry.build(work, domains, **shape)
    print(f"base: tiny Llama {shape}")
    port = free_port()
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--port", str(port), "--registry", str(registry), "--precision", args.precision,
               "--dtype", args.dtype, "--device", "cpu", "--window-ms", "20", "--max-batch", str(args.domains * args.requests_per_domain)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                httpx.get(f"{url}/stats", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if server.poll() is not None:
                    raise SystemExit("loraline serve exited while starting") from None
                time.sleep(0.25)
        resident = rss_mb(server.pid)
        body = {"messages": [{"role": "user", "content": PROMPT}], "max_tokens": args.max_tokens, "temperature": 0}
        requests = [{**body, "model": d} for d in domains for _ in range(args.requests_per_domain)]
        send_all(url, requests[:2])  # warm-up
        before = httpx.get(f"{url}/stats").json()["batches"]
        mixed_s, mixed_tokens = send_all(url, requests)
        mixed_batches = httpx.get(f"{url}/stats").json()["batches"] - before
        switch_s, switch_tokens = 0.0, 0
        for domain in domains:
            seconds, tokens = send_all(url, [r for r in requests if r["model"] == domain])
            switch_s, switch_tokens = switch_s + seconds, switch_tokens + tokens
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    merged_s, merged_tokens, merged_bytes = merged_run(base, adapters, args.requests_per_domain, args.max_tokens, args.dtype)

    import torch

    from assets.models.loading import load_full_precision_base, load_quantized_base

    load = load_quantized_base if args.precision == "4bit" else load_full_precision_base
    served_base = load(Path(base["path"]), getattr(torch, args.dtype), "cpu")
    base_bytes = sum(p.numel() * p.element_size() for p in served_base.parameters())
    adapter_bytes = 0
    for domain in domains:
        with safe_open(str(registry / domain / "adapter_model.safetensors"), "pt") as weights:
            adapter_bytes += sum(weights.get_tensor(k).numel() * weights.get_tensor(k).element_size() for k in weights.keys())
    n = len(requests)
    result = {
        "domains": args.domains, "requests": n, "max_tokens": args.max_tokens, "precision": args.precision, "dtype": args.dtype,
        "cpu_flags": flags, "load_average": [round(x, 1) for x in os.getloadavg()],
        "threads": args.threads or "default",
        "mixed": {"seconds": round(mixed_s, 3), "requests_per_s": round(n / mixed_s, 3), "tokens_per_s": round(mixed_tokens / mixed_s, 1),
                  "batches": mixed_batches},
        "switching": {"seconds": round(switch_s, 3), "requests_per_s": round(n / switch_s, 3), "tokens_per_s": round(switch_tokens / switch_s, 1)},
        "merged_in_process": {"seconds": round(merged_s, 3), "requests_per_s": round(n / merged_s, 3),
                              "tokens_per_s": round(merged_tokens / merged_s, 1)},
        "memory": {"base_plus_adapters_mb": round((base_bytes + adapter_bytes) / 2**20, 2), "adapters_mb": round(adapter_bytes / 2**20, 2),
                   "merged_models_mb": round(args.domains * merged_bytes / 2**20, 2), "server_rss_mb": round(resident, 1)},
    }
    print(f"mixed-adapter batches : {result['mixed']['requests_per_s']:.2f} req/s, {result['mixed']['tokens_per_s']:.0f} tok/s "
          f"({n} requests in {mixed_batches} batches)")
    print(f"one adapter at a time : {result['switching']['requests_per_s']:.2f} req/s, {result['switching']['tokens_per_s']:.0f} tok/s")
    print(f"merged (in process)   : {result['merged_in_process']['requests_per_s']:.2f} req/s, {result['merged_in_process']['tokens_per_s']:.0f} tok/s")
    print(f"memory: base + {args.domains} adapters {result['memory']['base_plus_adapters_mb']} MB (params; server RSS {resident:.0f} MB) "
          f"vs {args.domains} merged models {result['memory']['merged_models_mb']} MB")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
