"""Cleaning throughput and memory: loraline's streamed cleaning against a plain pandas version.

    python benchmarks/clean_throughput.py --size-mb 1024

Generates a synthetic corpus of `--size-mb` MB of text in `rows.parquet` form (what `raw_corpus`
writes), with a known set of planted exact duplicates and near duplicates (a few words replaced, then
one or two layout changes: re-flowed at another width, re-indented, runs of spaces, tabs, CRLF; a
normalised 5-gram Jaccard of about 0.9-0.95 to their original), cached under --workdir. Then, in two
fresh processes so that each peak RSS is its own, it cleans the corpus with

- loraline: `assets.quality.cleaning.clean_parquet` (polars streaming batches, one-permutation
  MinHash over whole batches, spool on disk), and
- pandas: the same rules written the plain way: the whole table in a DataFrame, row-wise Python
  normalisation and filters, `duplicated()` for exact copies, classic per-document MinHash
  (128 hashes of every shingle, as datasketch does) with the same LSH for near copies.

It prints a table (MB/s, peak RSS, duplicates found, near-duplicate recall and precision against the
planted truth) and, last, one line of JSON.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from near_dup_quality import LAYOUTS, layout  # noqa: E402  (the same layout edits as the quality benchmark)

DOC_WORDS = (30, 1200)  # words per document, log-uniform: ~200 B to ~8 KB, mean ~2 KB
EXACT_SHARE, NEAR_SHARE = 0.04, 0.06


def generate(path: Path, size_mb: int, seed: int) -> None:
    """Write rows.parquet and truth.parquet in chunks (the generator's memory stays flat)."""
    import random

    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    layout_rng = random.Random(seed)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
    vocab = [bytes(rng.choice(letters, size=rng.integers(2, 11))).decode() for _ in range(30_000)]
    cdf = np.cumsum(1.0 / np.arange(1, len(vocab) + 1) ** 0.8)  # Zipf-like word frequencies
    cdf /= cdf[-1]
    target, written, row = size_mb * 2**20, 0, 0
    originals: list[tuple[int, list[int]]] = []  # a pool of earlier originals to copy from
    rows_writer = truth_writer = None
    with _progress(target, "generating corpus") as bar:
        while written < target:
            texts, truth = [], {"row": [], "planted": [], "original": []}
            for _ in range(2000):
                draw = rng.random()
                if originals and draw < EXACT_SHARE:
                    source, words = originals[rng.integers(len(originals))]
                    kind = "exact"
                elif originals and draw < EXACT_SHARE + NEAR_SHARE:
                    source, words = originals[rng.integers(len(originals))]
                    words = list(words)
                    for _ in range(max(1, len(words) // 60)):  # ~10 of ~420 shingles per 60 words change
                        words[rng.integers(len(words))] = int(np.searchsorted(cdf, rng.random()))
                    kind = "near"
                else:
                    count = int(np.exp(rng.uniform(np.log(DOC_WORDS[0]), np.log(DOC_WORDS[1]))))
                    words = np.searchsorted(cdf, rng.random(count)).tolist()
                    source, kind = row, "original"
                    if len(originals) < 5000:
                        originals.append((row, words))
                    elif rng.random() < 0.05:
                        originals[rng.integers(len(originals))] = (row, words)
                # Lines of 12 words, as documents have; a near copy is laid out again.
                text = "\n".join(" ".join(vocab[w] for w in words[i:i + 12]) for i in range(0, len(words), 12)).capitalize() + "."
                if kind == "near":
                    for change in layout_rng.sample(LAYOUTS, layout_rng.randint(1, 2)):
                        text = layout(text, change, layout_rng)
                texts.append(text)
                truth["row"].append(row)
                truth["planted"].append(kind)
                truth["original"].append(source)
                row += 1
            size = sum(len(t) for t in texts)
            written += size
            bar(size)
            n = len(texts)
            chunk = pl.DataFrame({"source_file": ["synthetic.jsonl"] * n, "line": truth["row"], "kind": ["text"] * n,
                                  "roles": [["text"]] * n, "contents": [[t] for t in texts]}).with_columns(pl.col("line") + 1)
            tables = (chunk.to_arrow(), pa.table(truth))
            if rows_writer is None:
                rows_writer = pq.ParquetWriter(path / "rows.parquet", tables[0].schema)
                truth_writer = pq.ParquetWriter(path / "truth.parquet", tables[1].schema)
            rows_writer.write_table(tables[0])
            truth_writer.write_table(tables[1])
    rows_writer.close()
    truth_writer.close()


def _progress(total: int, label: str):
    from tqdm import tqdm

    class Bar:
        def __enter__(self):
            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr)
            return self.bar.update

        def __exit__(self, *exc):
            self.bar.close()

    return Bar()


def run_loraline(rows: Path, out: Path) -> dict:
    from assets.quality.cleaning import clean_parquet
    from assets.settings.cleaning import CleaningConfig

    summary = clean_parquet(rows, out / "clean.parquet", out / "filtered.parquet", CleaningConfig())
    import polars as pl

    filtered = pl.read_parquet(out / "filtered.parquet", columns=["line", "filter"])
    return {"rows_in": summary.rows_in, "rows_clean": summary.rows_clean, "counts": summary.counts,
            "near_rows": (filtered.filter(pl.col("filter") == "near_duplicate")["line"] - 1).to_list(),
            "exact_rows": (filtered.filter(pl.col("filter") == "exact_duplicate")["line"] - 1).to_list()}


def run_pandas(rows: Path, out: Path) -> dict:
    """The plain way: everything in one DataFrame, Python per row, classic MinHash per document."""
    import hashlib
    import re
    import unicodedata

    import pandas as pd

    from assets.quality.near_dups import cluster_signatures
    from assets.settings.cleaning import CleaningConfig

    config = CleaningConfig()
    crlf, control = re.compile(r"\r\n?"), re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
    trailing, blank = re.compile(r"(?m)[ \t]+$"), re.compile(r"\n{3,}")

    def normalise(text: str) -> str:
        text = unicodedata.normalize(config.unicode_form, text)
        return blank.sub("\n\n", trailing.sub("", control.sub("", crlf.sub("\n", text)))).strip()

    def repeated_share(turns) -> float:
        lines = [line for line in "\n".join(turns).split("\n") if line]
        seen, repeated = set(), 0
        for line in lines:
            repeated += len(line) if line in seen else 0
            seen.add(line)
        return repeated / max(sum(map(len, lines)), 1)

    df = pd.read_parquet(rows)
    df["contents"] = df["contents"].map(lambda turns: [normalise(t) for t in turns])
    df["n_chars"] = df["contents"].map(lambda turns: sum(map(len, turns)))
    df["content_hash"] = [hashlib.blake2b("\x1e".join(f"{r}\x1f{c}" for r, c in zip(roles, turns)).encode(), digest_size=16).hexdigest()
                          for roles, turns in zip(df["roles"], df["contents"])]
    df["filter"] = None
    df.loc[df["n_chars"] == 0, "filter"] = "empty_after_cleaning"
    df.loc[df["filter"].isna() & (df["n_chars"] < config.min_chars), "filter"] = "too_short"
    df.loc[df["filter"].isna() & (df["n_chars"] > config.max_chars), "filter"] = "too_long"
    df.loc[df["filter"].isna() & (df["contents"].map(repeated_share) > config.max_repeated_line_share), "filter"] = "repetitive"
    alive = df["filter"].isna()
    df.loc[alive & df[alive].duplicated("content_hash").reindex(df.index, fill_value=False), "filter"] = "exact_duplicate"
    alive = df["filter"].isna()
    texts = ["\n".join(f"{r}: {c}" for r, c in zip(roles, turns)) for roles, turns in zip(df.loc[alive, "roles"], df.loc[alive, "contents"])]
    clusters = cluster_signatures(classic_signatures(texts), config.near_dup_threshold)
    df.loc[df.index[alive][clusters.duplicates], "filter"] = "near_duplicate"
    df[df["filter"].isna()].drop(columns="filter").to_parquet(out / "pandas_clean.parquet")
    df[df["filter"].notna()].to_parquet(out / "pandas_filtered.parquet")
    counts = df["filter"].value_counts().to_dict()
    return {"rows_in": len(df), "rows_clean": int(df["filter"].isna().sum()), "counts": {k: int(v) for k, v in counts.items()},
            "near_rows": (df.loc[df["filter"] == "near_duplicate", "line"] - 1).tolist(),
            "exact_rows": (df.loc[df["filter"] == "exact_duplicate", "line"] - 1).tolist()}


def classic_signatures(texts: list[str], num_perm: int = 128) -> np.ndarray:
    """Textbook MinHash: every distinct shingle hashed by each of 128 multiply-shift hash functions;
    the minimum per function (low 15 bits kept, as loraline keeps)."""
    rng = np.random.default_rng(1)
    a = rng.integers(1, 2**63, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=num_perm, dtype=np.uint64)
    powers = np.uint64(1099511628211) ** np.arange(5, dtype=np.uint64)
    out = np.empty((len(texts), num_perm), dtype=np.uint16)
    with np.errstate(over="ignore"):
        for row, text in enumerate(texts):
            data = np.frombuffer(" ".join(text.lower().split()).encode(), dtype=np.uint8).astype(np.uint64)
            if len(data) < 5:
                data = np.pad(data, (0, 5 - len(data)))
            shingles = np.unique(np.lib.stride_tricks.sliding_window_view(data, 5) @ powers)
            minima = ((a[:, None] * shingles[None, :] + b[:, None]) >> np.uint64(32)).min(axis=1)
            out[row] = (minima & np.uint64(0x7FFF)).astype(np.uint16)
    return out


def child(engine: str, rows: Path, out: Path) -> None:
    started = time.perf_counter()
    result = (run_loraline if engine == "loraline" else run_pandas)(rows, out)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def measure(engine: str, rows: Path, out: Path) -> dict:
    print(f"cleaning with {engine} ...", file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, __file__, "--child", engine, "--rows", str(rows), "--out", str(out)],
                          check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def score(result: dict, truth) -> dict:
    planted_near = set(truth.loc[truth["planted"] == "near", "row"])
    planted_exact = set(truth.loc[truth["planted"] == "exact", "row"])
    found = set(result["near_rows"])
    hits = len(found & planted_near)
    return {"near_dup_recall": hits / max(len(planted_near), 1), "near_dup_precision": hits / max(len(found), 1),
            "exact_dup_recall": len(set(result["exact_rows"]) & planted_exact) / max(len(planted_exact), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "loraline-bench")
    parser.add_argument("--skip-pandas", action="store_true", help="measure loraline only")
    parser.add_argument("--child", choices=["loraline", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.rows, args.out)

    import pandas as pd
    import polars as pl

    corpus = args.workdir / f"corpus-{args.size_mb}mb-seed{args.seed}-layout"
    if not (corpus / "truth.parquet").exists():
        corpus.mkdir(parents=True, exist_ok=True)
        generate(corpus, args.size_mb, args.seed)
    text_mb = pl.scan_parquet(corpus / "rows.parquet").select(
        pl.col("contents").list.join("").str.len_bytes().sum()).collect().item() / 2**20
    truth = pd.read_parquet(corpus / "truth.parquet")
    out = args.workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    results = {"loraline": measure("loraline", corpus / "rows.parquet", out)}
    if not args.skip_pandas:
        results["pandas"] = measure("pandas", corpus / "rows.parquet", out)

    planted = truth["planted"].value_counts().to_dict()
    print(f"\ncorpus: {text_mb:,.0f} MB of text, {len(truth):,} records; planted {planted.get('exact', 0):,} exact "
          f"and {planted.get('near', 0):,} near duplicates\n")
    print("| engine | seconds | MB/s | peak RSS MB | clean rows | exact dups | near dups | near recall | near precision |")
    print("|---|---|---|---|---|---|---|---|---|")
    scores = {}
    for engine, result in results.items():
        scores[engine] = score(result, truth)
        print(f"| {engine} | {result['seconds']:.1f} | {text_mb / result['seconds']:.1f} | {result['peak_rss_mb']:,.0f} | "
              f"{result['rows_clean']:,} | {result['counts'].get('exact_duplicate', 0):,} | "
              f"{result['counts'].get('near_duplicate', 0):,} | {scores[engine]['near_dup_recall']:.4f} | "
              f"{scores[engine]['near_dup_precision']:.4f} |")
    ours = results["loraline"]
    summary = {
        "size_mb": round(text_mb, 1), "records": len(truth),
        "mb_per_s": round(text_mb / ours["seconds"], 2), "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "near_dup_recall": round(scores["loraline"]["near_dup_recall"], 4),
        "near_dup_precision": round(scores["loraline"]["near_dup_precision"], 4),
        "exact_dup_recall": round(scores["loraline"]["exact_dup_recall"], 4),
    }
    if "pandas" in results:
        theirs = results["pandas"]
        summary |= {"pandas_mb_per_s": round(text_mb / theirs["seconds"], 2), "pandas_peak_rss_mb": round(theirs["peak_rss_mb"], 1),
                    "speedup_vs_pandas": round(theirs["seconds"] / ours["seconds"], 2),
                    "pandas_near_dup_recall": round(scores["pandas"]["near_dup_recall"], 4),
                    "pandas_near_dup_precision": round(scores["pandas"]["near_dup_precision"], 4)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
