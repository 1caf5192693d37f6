"""Tokenization throughput and memory: `training_dataset`'s streamed, batched, multi-process path
against the per-row path it replaced and against the fast tokenizer's own batch rate.

    python benchmarks/tokenize_throughput.py --size-mb 200 [--family-on-small]

Generates a clean_corpus-shaped `rows.parquet` of `--size-mb` MB of texts (kind, roles, contents,
content_hash, split_key, source_file, line), cached under --workdir: the sample domains' support
conversations (system prompt, one to several exchanges), recipes and techniques (instructions) and
astronomy notes (text), recombined into varied lengths, a share of them longer than max_seq_len
(long documents are windowed, long conversations split at turn boundaries).

Then, each in a fresh process so that its peak RSS is its own:
- raw: the fast tokenizer's batch encoding of the *rendered* texts, `tokenizer(batch,
  return_offsets_mapping=True)` (chat rows rendered with the template beforehand, not timed), with
  every core available to its Rust thread pool. That is the work no implementation can skip: the
  tokens training sees. Encoding the bare contents instead would undercount the template's tokens.
- new: `stream_tokenize` (parquet record batches, one worker process per core, Arrow shards).
- old: the per-row path (`encode_record` per row, everything in memory), on --old-size-mb and
  extrapolated linearly to --size-mb (its memory grows with the input: ~36 MB per MB).

It prints the CPU flags, the tokenizer, figures per path, and last one line of JSON.
"""

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAX_SEQ_LEN = 1024  # the default max_seq_len; the tiny tokenizer's tokens are bytes


def _pools(seed: int):
    """Base records from the sample domains' generators: (chats, instructions, texts)."""
    from pipelines import samples as s

    rng = random.Random(seed)
    chats = [s._support_record(rng, rng.random() < 0.5)["messages"] for _ in range(3000)]
    instructions = [s._recipe(rng, rng.random() < 0.5) for _ in range(1500)]
    instructions += [s._technique(rng, rng.random() < 0.5) for _ in range(1500)]
    texts = [s._note(rng)["text"] for _ in range(3000)] + [t for _ in range(50) for _, t in s._documents(rng)]
    return chats, instructions, texts


def _record(rng: random.Random, pools) -> tuple[str, list[str], list[str]]:
    chats, instructions, texts = pools
    draw = rng.random()
    if draw < 0.4:  # a conversation: mostly one support ticket, some several tickets strung together
        first = rng.choice(chats)
        messages = list(first)
        for _ in range(rng.choice((0, 0, 0, 1, 2, 6))):
            messages += [m for m in rng.choice(chats) if m["role"] != "system"]
        return "chat", [m["role"] for m in messages], [m["content"] for m in messages]
    if draw < 0.7:
        record = rng.choice(instructions)
        prompt = record["instruction"] + ("\n\n" + record["input"] if record.get("input") else "")
        return "instruction", ["user", "assistant"], [prompt, record["output"]]
    # Text: a note, or several notes and documents run together (up to ~8x max_seq_len).
    parts = rng.choice((1, 1, 2, 3, 6, 20))
    return "text", ["text"], [" ".join(rng.choice(texts) for _ in range(parts))]


def generate(path: Path, size_mb: int, seed: int) -> None:
    """Write rows.parquet in record batches (the generator's memory stays flat)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assets.quality.cleaning import content_hash

    rng, pools = random.Random(seed), _pools(seed)
    schema = pa.schema([("source_file", pa.string()), ("line", pa.int64()), ("kind", pa.string()),
                        ("roles", pa.list_(pa.string())), ("contents", pa.list_(pa.string())),
                        ("content_hash", pa.string()), ("split_key", pa.string())])
    target, written, line = size_mb * 2**20, 0, 0
    tmp = path.with_suffix(".tmp")
    with pq.ParquetWriter(tmp, schema) as writer:
        while written < target:
            batch = {name: [] for name in schema.names}
            for _ in range(5000):
                kind, roles, contents = _record(rng, pools)
                line += 1
                digest = content_hash(roles, contents)
                for name, value in zip(schema.names, ("bench.jsonl", line, kind, roles, contents, digest, digest)):
                    batch[name].append(value)
                written += sum(len(c.encode()) for c in contents)
            writer.write_table(pa.table(batch, schema=schema))
    tmp.rename(path)


def texts_mb(rows: Path) -> float:
    import pyarrow.parquet as pq

    total = 0
    for batch in pq.ParquetFile(rows).iter_batches(columns=["contents"], batch_size=20_000):
        total += sum(len(c.encode()) for row in batch.column(0).to_pylist() for c in row)
    return total / 2**20


# --- the three paths, each run in its own process (`--run NAME`) ------------------------------------

def run_raw(rows: Path, tokenizer_dir: Path, limit_mb: float | None) -> dict:
    """Render every row the way training does (not timed), then time the fast tokenizer's batch encoding."""
    import pyarrow.parquet as pq

    from assets.models.chat_format import chat_format, render
    from assets.models.loading import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    fmt = chat_format(tokenizer)
    texts, size = [], 0
    for batch in pq.ParquetFile(rows).iter_batches(columns=["kind", "roles", "contents"], batch_size=5000):
        for kind, roles, contents in zip(*(batch.column(i).to_pylist() for i in range(3))):
            if kind == "text":
                texts.append("\n\n".join(contents))
            else:
                texts.append(render(tokenizer, fmt, [{"role": r, "content": c} for r, c in zip(roles, contents)]))
            size += sum(len(c.encode()) for c in contents)
        if limit_mb and size >= limit_mb * 2**20:
            break
    started, cpu_started = time.perf_counter(), time.process_time()
    tokens = 0
    for i in range(0, len(texts), 2000):
        encoded = tokenizer(texts[i:i + 2000], add_special_tokens=False, return_offsets_mapping=True)
        tokens += sum(len(ids) for ids in encoded["input_ids"])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    # For reference: the Rust encoder alone (no transformers wrapper) on the first ~20 MB of texts,
    # what our path calls; transformers' conversion to Python lists is most of the raw time.
    sample, sample_bytes = [], 0
    for text in texts:
        sample.append(text)
        sample_bytes += len(text.encode())
        if sample_bytes >= 20 * 2**20:
            break
    started = time.perf_counter()
    for i in range(0, len(sample), 2000):
        tokenizer._tokenizer.encode_batch(sample[i:i + 2000], add_special_tokens=False)
    rust = sample_bytes / 2**20 / (time.perf_counter() - started)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "texts_mb": size / 2**20, "tokens": tokens, "rust_rendered_mb_per_s": rust}


def run_new(rows: Path, tokenizer_dir: Path, out: Path, workers: int | None) -> dict:
    from assets.settings.tokenization import TokenizationConfig
    from assets.tokenization.streaming import stream_tokenize

    started = time.perf_counter()
    result = stream_tokenize(rows, tokenizer_dir, TokenizationConfig(max_seq_len=MAX_SEQ_LEN), out,
                             workers=workers, log=lambda line: print(f"  {line}", file=sys.stderr))
    return {"seconds": time.perf_counter() - started, "workers": result.workers, "stats": result.stats}


def run_old(rows: Path, tokenizer_dir: Path, out: Path) -> dict:
    import polars as pl

    from assets.models.loading import load_tokenizer
    from assets.settings.tokenization import TokenizationConfig
    from assets.tokenization.tokenizing import tokenize_corpus_per_row

    started = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_dir)
    clean = pl.read_parquet(rows)
    result = tokenize_corpus_per_row(clean, tokenizer, TokenizationConfig(max_seq_len=MAX_SEQ_LEN))
    result.train.save_to_disk(str(out / "train"))
    result.eval.save_to_disk(str(out / "eval"))
    return {"seconds": time.perf_counter() - started, "stats": result.stats}


class PssSampler:
    """Peak of this process's plus its children's PSS (proportional set size, /proc/<pid>/smaps_rollup),
    sampled every 0.5 s: shared pages (torch's and the tokenizer's libraries, which every worker maps)
    counted once, unlike a sum of RSS. (Each read walks the process's mappings, ~2 ms: every 0.2 s
    for three processes it took ~3% of a core from the run it measured.)"""

    def __init__(self) -> None:
        import threading

        self.peak_kb = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            pids = [os.getpid()]
            try:
                pids += [int(p) for p in Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()]
            except OSError:
                pass
            total = 0
            for pid in pids:
                try:
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total += int(line.split()[1])
                except OSError:
                    continue
            self.peak_kb = max(self.peak_kb, total)

    def finish(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.peak_kb / 1024


def _in_process(name: str, args: argparse.Namespace) -> None:
    rows, tokenizer_dir, out = Path(args.rows), Path(args.tokenizer_dir), Path(args.out)
    sampler = PssSampler()
    if name == "raw":
        result = run_raw(rows, tokenizer_dir, args.limit_mb)
    elif name == "new":
        result = run_new(rows, tokenizer_dir, out, args.workers)
    else:
        result = run_old(rows, tokenizer_dir, out)
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU seconds of the encoding work (the workers' user + system time; this process's when it ran
    # alone): unlike wall time, it does not depend on what else the machine runs.
    result["worker_cpu_s"] = children.ru_utime + children.ru_stime if result.get("workers", 1) > 1 else \
        sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
    result["parent_cpu_s"] = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])  # reading, writing, the pool's traffic
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker's, not a sum
    # Every worker counted at the largest one's peak: an upper bound of what the pool held at once.
    result |= {"parent_rss_mb": own, "worker_rss_mb": child, "peak_rss_mb": own + result.get("workers", 0) * child,
               "peak_pss_mb": sampler.finish()}
    print(json.dumps(result))


def _spawn(name: str, rows: Path, tokenizer_dir: Path, out: Path, **extra) -> dict:
    command = [sys.executable, __file__, "--run", name, "--rows", str(rows), "--tokenizer-dir", str(tokenizer_dir), "--out", str(out)]
    for key, value in extra.items():
        if value is not None:
            command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tokenizers(workdir: Path) -> list[tuple[str, Path]]:
    """The built-in tiny Llama tokenizer, and a family tokenizer with a published template when one builds offline."""
    from assets.foundation.tiny_llama import build_tokenizer

    tiny = workdir / "tok-tiny-llama"
    if not tiny.exists():
        build_tokenizer().save_pretrained(tiny)
    found = [("builtin tiny-llama (byte-level, 263 tokens)", tiny)]
    family = workdir / "tok-qwen2"
    try:
        if not family.exists():
            sys.path.insert(0, str(ROOT / "tests" / "families"))
            from family_specs import FAMILIES
            from family_tokenizers import save_tokenizer

            save_tokenizer(FAMILIES["qwen2"], family)
        found.append(("tests/families qwen2 (byte-level BPE, ~1k tokens, published chat template)", family))
    except (ImportError, KeyError, OSError) as error:
        print(f"family tokenizer skipped: {error}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--old-size-mb", type=int, default=20, help="the per-row path runs on this many MB (extrapolated)")
    parser.add_argument("--workdir", default=str(Path(tempfile.gettempdir()) / "loraline-tokenize-bench"))
    parser.add_argument("--workers", type=int, default=None, help="worker processes of the new path (default: one per core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--family-on-small", action="store_true", help="run the second (family) tokenizer on --old-size-mb only")
    parser.add_argument("--no-old", action="store_true", help="skip the per-row path (minutes on 20 MB; its figures do not change)")
    parser.add_argument("--builtin-only", action="store_true", help="only the built-in tokenizer")
    parser.add_argument("--run", choices=("raw", "new", "old"), help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--limit-mb", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        _in_process(args.run, args)
        return

    from assets.models.loading import cpu_flags

    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    print(f"cpu flags: {', '.join(flags) or '-'}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
          "dtype: int64 token ids (no float compute)")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    big, small = workdir / f"rows-{args.size_mb}mb-{args.seed}.parquet", workdir / f"rows-{args.old_size_mb}mb-{args.seed}.parquet"
    for path, size in ((big, args.size_mb), (small, args.old_size_mb)):
        if not path.exists():
            print(f"generating {size} MB corpus at {path}")
            generate(path, size, args.seed)
    small_mb = texts_mb(small)
    summary = None
    for number, (label, tokenizer_dir) in enumerate(_tokenizers(workdir)[:1 if args.builtin_only else None]):
        out = Path(tempfile.mkdtemp(prefix="out-", dir=workdir))
        # The family tokenizer's line runs on the smaller corpus (--family-on-small): the same code, half the wait.
        corpus, size_mb = (small, small_mb) if number and args.family_on_small else (big, texts_mb(big))
        try:
            raw = _spawn("raw", corpus, tokenizer_dir, out)
            new = _spawn("new", corpus, tokenizer_dir, out / "new", workers=args.workers)
            old = None if args.no_old else _spawn("old", small, tokenizer_dir, out / "old")
        finally:
            shutil.rmtree(out, ignore_errors=True)  # the datasets written: several GB at --size-mb 1000
        raw_rate, new_rate = raw["texts_mb"] / raw["seconds"], size_mb / new["seconds"]
        print(f"\ntokenizer: {label}; max_seq_len {MAX_SEQ_LEN}")
        print(f"  texts: {size_mb:.1f} MB ({new['stats']['rows']} rows, {new['stats']['train_examples'] + new['stats']['eval_examples']} examples)")
        print(f"  raw fast-tokenizer batch rate, tokenizer(texts, return_offsets_mapping=True) on the rendered texts, all cores: "
              f"{raw['seconds']:.1f} s, {raw_rate:.2f} MB/s (the Rust encode_batch alone: {raw['rust_rendered_mb_per_s']:.2f} MB/s)")
        print(f"  new (streamed, {new['workers']} workers): {new['seconds']:.1f} s, {new_rate:.2f} MB/s, "
              f"ratio vs raw {new_rate / raw_rate:.2f}, peak RSS {new['peak_rss_mb']:.0f} MB "
              f"(parent {new['parent_rss_mb']:.0f} MB + {new['workers']} x largest worker {new['worker_rss_mb']:.0f} MB; "
              f"peak PSS of all of them, shared pages once: {new['peak_pss_mb']:.0f} MB); "
              f"workers' CPU {new['worker_cpu_s']:.0f} s, {size_mb / new['worker_cpu_s']:.2f} MB per CPU-second")
        # CPU seconds per MB, all processes and threads: unlike the wall-time ratio, it hardly moves with
        # what else runs on the machine (raw and new are timed minutes apart on shared cores).
        new_cpu = new["worker_cpu_s"] + (new["parent_cpu_s"] if new["workers"] > 1 else 0.0)
        cpu_ratio = (raw["cpu_seconds"] / raw["texts_mb"]) / (new_cpu / size_mb)
        print(f"  CPU: raw {raw['cpu_seconds']:.0f} s, new {new_cpu:.0f} s (parent {new['parent_cpu_s']:.0f} s); "
              f"ratio of CPU-seconds per MB, raw over new: {cpu_ratio:.2f}")
        if old is not None:
            old_rate = small_mb / old["seconds"]
            print(f"  old (per row, in memory) on {small_mb:.1f} MB: {old['seconds']:.1f} s, {old_rate:.2f} MB/s, peak RSS "
                  f"{old['peak_rss_mb']:.0f} MB (PSS {old['peak_pss_mb']:.0f} MB); extrapolated to {size_mb:.0f} MB: {size_mb / old_rate:.0f} s, "
                  f"~{old['peak_rss_mb'] / small_mb * size_mb:.0f} MB")
        if summary is None:
            summary = {"tokenizer": label, "texts_mb": round(size_mb, 1), "seconds": round(new["seconds"], 2),
                       "mb_per_s": round(new_rate, 3), "raw_mb_per_s": round(raw_rate, 3),
                       "ratio_vs_raw": round(new_rate / raw_rate, 3), "peak_rss_mb": round(new["peak_rss_mb"], 1),
                       "peak_pss_mb": round(new["peak_pss_mb"], 1), "rust_encode_mb_per_s": round(raw["rust_rendered_mb_per_s"], 3),
                       "workers": new["workers"], "parent_rss_mb": round(new["parent_rss_mb"], 1),
                       "worker_rss_mb": round(new["worker_rss_mb"], 1), "worker_cpu_s": round(new["worker_cpu_s"], 1),
                       "mb_per_worker_cpu_s": round(size_mb / new["worker_cpu_s"], 3), "parent_cpu_s": round(new["parent_cpu_s"], 1),
                       "raw_cpu_s": round(raw["cpu_seconds"], 1), "cpu_ratio_vs_raw": round(cpu_ratio, 3),
                       "load_average": round(os.getloadavg()[0], 2)}
            if old is not None:
                summary |= {"old_mb_per_s": round(small_mb / old["seconds"], 3), "old_peak_rss_mb": round(old["peak_rss_mb"], 1),
                            "old_measured_mb": round(small_mb, 1)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
