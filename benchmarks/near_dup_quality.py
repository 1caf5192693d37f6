"""Near-duplicate quality on real documentation text with layout edits: recall, precision, speed.

    python benchmarks/near_dup_quality.py --docs 20000

The text is real documentation: the docstrings (30 words or more) of the Python standard library and
of the packages installed with loraline (numpy, pandas, polars, dagster, transformers, torch, ...),
read with `ast` (nothing is imported), cached under --workdir. Distinct documents share the
boilerplate real docs share ("Parameters", "Returns", "If None, defaults to ..."), and the source
holds its own near-duplicates (copied and templated docstrings), as real corpora do.

A share of the documents get a planted near copy, inserted later in landing order: a few words
replaced, inserted or deleted (one per 60 words, at least one), then one to three layout changes: the
text re-flowed at another width, re-indented (spaces or a tab), single spaces turned into runs of
spaces or tabs, line ends turned into CRLF. Then it runs

- the core, `assets.quality.near_dups.find_near_duplicates` on the texts, and
- the cleaning step, `assets.quality.cleaning.clean_corpus` with the default `CleaningConfig`,

and scores each against the truth, computed exactly (no MinHash) on the same normalised shingles
the detector uses (`near_dups.normalise`, then UTF-8 byte 5-grams):

- recall: planted copies put in their original's cluster, over the planted copies that reach
  near-duplicate detection (other filters, e.g. `too_long`, take a few originals or copies first);
- precision: flagged rows that are a planted copy in its original's cluster or whose true Jaccard
  with an earlier member of their cluster reaches the threshold (a real near copy in the source),
  over all flagged rows. A flagged row below the threshold against every member is a false positive.

It prints the CPU, the figures and signing throughput (MB/s of text, best of three), then one JSON line.
"""

import argparse
import ast
import json
import os
import platform
import random
import re
import sys
import sysconfig
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PACKAGES = ("numpy", "pandas", "polars", "dagster", "transformers", "torch", "sqlalchemy", "pydantic",
            "great_expectations", "scipy", "sympy", "datasets", "peft")
MIN_WORDS = 30
COPY_SHARE = 0.1
WORDS_PER_EDIT = 60
LAYOUTS = ("reflow", "reindent", "space_runs", "tabs", "crlf")


def docstrings(cache: Path) -> list[str]:
    """Every docstring of MIN_WORDS or more words, in a fixed file order; cached as parquet."""
    import polars as pl

    if cache.exists():
        return pl.read_parquet(cache)["text"].to_list()
    paths = sysconfig.get_paths()
    roots = [Path(paths["stdlib"])] + [Path(paths["purelib"]) / name for name in PACKAGES]
    texts = []
    for root in roots:
        print(f"reading docstrings under {root} ...", file=sys.stderr, flush=True)
        for path in sorted(root.rglob("*.py")):
            try:
                tree = ast.parse(path.read_bytes())
            except (SyntaxError, ValueError):  # test fixtures with deliberately broken code
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc and len(doc.split()) >= MIN_WORDS:
                        texts.append(doc)
    cache.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"text": texts}).write_parquet(cache)
    return texts


def layout(text: str, change: str, rng: random.Random) -> str:
    """One layout change of the kind exports and editors make; the words stay the same."""
    if change == "reflow":  # each paragraph wrapped again at another width
        width = rng.randint(40, 110)
        return "\n\n".join(textwrap.fill(p, width) for p in re.split(r"\n\s*\n", text))
    if change == "reindent":
        prefix = rng.choice(("  ", "    ", "        ", "\t"))
        return "\n".join(prefix + line if line else line for line in text.split("\n"))
    if change == "space_runs":
        return re.sub(" ", lambda m: " " * rng.choice((1, 1, 2, 3, 4)), text)
    if change == "tabs":
        return re.sub(" ", lambda m: rng.choice((" ", " ", " ", "\t")), text)
    return text.replace("\n", "\r\n")


def near_copy(text: str, vocabulary: list[str], rng: random.Random) -> str:
    """A few words replaced, inserted or deleted (one per WORDS_PER_EDIT, at least one), keeping the
    original line structure, then one to three layout changes."""
    lines = [line.split(" ") for line in text.split("\n")]
    spots = [(i, j) for i, line in enumerate(lines) for j, word in enumerate(line) if word]
    for _ in range(max(1, len(spots) // WORDS_PER_EDIT)):
        i, j = rng.choice(spots)
        action = rng.random()
        if action < 0.6:
            lines[i][j] = rng.choice(vocabulary)
        elif action < 0.8:
            lines[i].insert(j, rng.choice(vocabulary))
        else:
            lines[i][j] = ""
        spots = [(i, j) for i, line in enumerate(lines) for j, word in enumerate(line) if word]
    copy = "\n".join(re.sub(" {2,}", " ", " ".join(line)) for line in lines)
    for change in rng.sample(LAYOUTS, rng.randint(1, 3)):
        copy = layout(copy, change, rng)
    return copy


def plant(texts: list[str], docs: int, seed: int) -> tuple[list[str], list[int]]:
    """(texts in landing order, source of each: -1 for an original, else the row of its original)."""
    from assets.quality.near_dups import normalise

    rng = random.Random(seed)
    # Originals differ once normalised (exact copies are the exact filter's business, not this one's).
    unique = list(dict(zip(normalise(texts).to_list(), texts)).values())
    originals = rng.sample(unique, min(docs, len(unique)))
    vocabulary = [word for text in rng.sample(originals, min(500, len(originals))) for word in text.split() if word.isalpha()]
    keyed = [(float(i), text, i) for i, text in enumerate(originals)]
    for i in rng.sample(range(len(originals)), int(len(originals) * COPY_SHARE)):
        keyed.append((rng.uniform(i + 0.5, len(originals)), near_copy(originals[i], vocabulary, rng), -1 - i))
    keyed.sort(key=lambda item: item[0])
    row_of = {tag: row for row, (_, _, tag) in enumerate(keyed) if tag >= 0}
    return [text for _, text, _ in keyed], [-1 if tag >= 0 else row_of[-1 - tag] for _, _, tag in keyed]


def shingles(text: str) -> set[bytes]:
    from assets.quality.near_dups import SHINGLE_BYTES, normalise

    data = normalise([text])[0].encode()
    return {data[i:i + SHINGLE_BYTES] for i in range(max(len(data) - SHINGLE_BYTES + 1, 1))}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(len(sa | sb), 1)


def score(texts: list[str], source: list[int], cluster: list, flagged: np.ndarray, eligible: np.ndarray, threshold: float) -> dict:
    """Recall over eligible planted copies; precision over flagged rows, judged on the true Jaccard."""
    planted = [row for row, src in enumerate(source) if src >= 0 and eligible[row] and eligible[src]]
    hits = sum(bool(flagged[row]) and cluster[row] == cluster[source[row]] for row in planted)
    members: dict = {}
    for row, key in enumerate(cluster):
        if eligible[row]:
            members.setdefault(key, []).append(row)
    true_planted = true_real = false = 0
    for row in np.flatnonzero(flagged).tolist():
        src = source[row]
        if src >= 0 and cluster[row] == cluster[src]:
            true_planted += 1
        elif max(jaccard(texts[row], texts[other]) for other in members[cluster[row]] if other != row) >= threshold:
            true_real += 1
        else:
            false += 1
    planted_j = [jaccard(texts[row], texts[source[row]]) for row in planted]
    return {"planted": len(planted), "recall": hits / max(len(planted), 1),
            "flagged": int(flagged.sum()), "flagged_planted": true_planted, "flagged_real_near_copies": true_real,
            "false_positives": false, "precision": (true_planted + true_real) / max(int(flagged.sum()), 1),
            "planted_true_jaccard_min": round(min(planted_j, default=1.0), 3),
            "planted_true_jaccard_p05": round(float(np.quantile(planted_j, 0.05)) if planted_j else 1.0, 3),
            "planted_below_threshold": sum(j < threshold for j in planted_j)}


def cpu() -> str:
    flags = set()
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    simd = sorted(f for f in flags if f in ("sse4_2", "avx", "avx2", "fma", "bmi2") or f.startswith("avx512") or f.startswith("amx"))
    return f"{model}, {os.cpu_count()} cores visible, load {os.getloadavg()[0]:.1f}; SIMD flags: {' '.join(simd) or 'unknown'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20000, help="original documents sampled from the docstrings")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "loraline-bench")
    args = parser.parse_args()

    import polars as pl

    from assets.corpora.readers import ROW_SCHEMA
    from assets.quality.cleaning import clean_corpus
    from assets.quality.near_dups import find_near_duplicates, signatures
    from assets.settings.cleaning import CleaningConfig

    config = CleaningConfig()
    threshold = config.near_dup_threshold
    texts, source = plant(docstrings(args.workdir / f"docstrings-py{sys.version_info.major}{sys.version_info.minor}.parquet"), args.docs, args.seed)
    series = pl.Series(texts, dtype=pl.String)
    mb = series.str.len_bytes().sum() / 2**20
    print(f"CPU: {cpu()}", file=sys.stderr)
    print(f"corpus: {len(texts):,} documents, {mb:.1f} MB, {sum(s >= 0 for s in source):,} planted near copies; "
          f"threshold {threshold}", file=sys.stderr)

    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        signatures(series)
        seconds.append(time.perf_counter() - started)
    started = time.perf_counter()
    core = find_near_duplicates(series, threshold)
    core_seconds = time.perf_counter() - started
    everything = np.ones(len(texts), dtype=bool)
    core_score = score(texts, source, core.cluster.tolist(), core.duplicates, everything, threshold)

    frame = pl.DataFrame({"source_file": ["docs.jsonl"] * len(texts), "line": list(range(1, len(texts) + 1)),
                          "kind": ["text"] * len(texts), "roles": [["text"]] * len(texts), "contents": [[t] for t in texts]},
                         schema=ROW_SCHEMA)
    started = time.perf_counter()
    result = clean_corpus(frame, config)
    clean_seconds = time.perf_counter() - started
    rows = pl.concat([result.clean.select("line", "split_key", pl.lit(None, pl.String).alias("filter")),
                      result.filtered.select("line", "split_key", "filter")]).sort("line")
    reached = rows["filter"].is_null() | (rows["filter"] == "near_duplicate").fill_null(False)
    cleaning_score = score(texts, source, rows["split_key"].to_list(), (rows["filter"] == "near_duplicate").fill_null(False).to_numpy(),
                           reached.to_numpy(), threshold)

    print("| detector | planted | recall | flagged | planted found | real near copies | false positives | precision |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in (("near_dups core", core_score), ("clean_corpus", cleaning_score)):
        print(f"| {name} | {s['planted']:,} | {s['recall']:.4f} | {s['flagged']:,} | {s['flagged_planted']:,} | "
              f"{s['flagged_real_near_copies']:,} | {s['false_positives']:,} | {s['precision']:.4f} |")
    print(f"\nplanted copies' true Jaccard: min {core_score['planted_true_jaccard_min']}, 5th percentile "
          f"{core_score['planted_true_jaccard_p05']}, {core_score['planted_below_threshold']} below the threshold")
    print(f"signing: {mb / min(seconds):.1f} MB/s ({len(texts) / min(seconds):,.0f} rows/s); find_near_duplicates "
          f"{core_seconds:.2f} s; clean_corpus {clean_seconds:.2f} s ({len(texts) / clean_seconds:,.0f} rows/s)")
    print(json.dumps({"documents": len(texts), "mb": round(mb, 1), "threshold": threshold,
                      "recall": round(cleaning_score["recall"], 4), "precision": round(cleaning_score["precision"], 4),
                      "core_recall": round(core_score["recall"], 4), "core_precision": round(core_score["precision"], 4),
                      "false_positives": cleaning_score["false_positives"],
                      "sign_mb_per_s": round(mb / min(seconds), 1), "sign_rows_per_s": round(len(texts) / min(seconds)),
                      "clean_rows_per_s": round(len(texts) / clean_seconds)}))


if __name__ == "__main__":
    main()
