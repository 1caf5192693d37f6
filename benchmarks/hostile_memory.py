"""Peak memory of reading hostile landings: does raw_corpus stay bounded for every file shape?

    python benchmarks/hostile_memory.py                # the issue's sizes (a few minutes)
    python benchmarks/hostile_memory.py --scale 0.01   # 1% of them, for a quick look

Three domains are built in a temporary folder:
  bad_lines     1 GB of lines that are not JSON (each becomes a quarantine row)
  json_array    a 100 MB .json array of small records (one document, read element by element)
  parquet_bomb  a parquet file of ~0.5 MB that decodes to 300 MB of text (~600x) in one page
  parquet_dense the same text in 1 MiB pages, all in one row group (read in bounded batches)
Each is ingested in its own fresh process through `write_domain` (the path raw_corpus takes:
rows.parquet and quarantine.parquet written in batches) followed by the independent record count
(`tally`, as raw_corpus runs it).
The child resets the kernel's peak-RSS mark after its imports, so the figure is the peak resident
memory over the process's baseline. Prints a table, then one line of JSON. Target: each <= 300 MB.
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_MB = 300
MB = 2**20


def build_bad_lines(folder: Path, size: int) -> None:
    # ~100-byte lines: short enough that per-row overhead (not the text) dominates, as it did.
    line = b"this line is not JSON at all, {broken: 'record'} number %09d of a hostile upload......\n"
    with open(folder / "bad.jsonl", "wb") as out:
        block = b"".join(line % i for i in range(10_000))
        for _ in range(max(1, size // len(block))):
            out.write(block)


def build_json_array(folder: Path, size: int) -> None:
    with open(folder / "array.json", "w", encoding="utf-8") as out:
        out.write("[")
        written, number = 1, 0
        while written < size:
            element = json.dumps({"id": number, "text": f"document {number}: " + "words of a small record " * 3})
            out.write(("," if number else "") + element)
            written += len(element) + 1
            number += 1
        out.write("]")


def _bomb(folder: Path, size: int, name: str, **options) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # 1 MiB documents, each a different 3 KB random block repeated: zstd shrinks them ~600x, the
    # dictionary cannot (every value differs), and all of them sit in one row group.
    rng = random.Random(11)
    rows = max(1, size // MB)
    texts = [(rng.randbytes(1536).hex() * (MB // 3072 + 1))[:MB] for _ in range(rows)]
    table = pa.table({"text": texts, "id": list(range(rows))})
    pq.write_table(table, folder / name, compression="zstd", compression_level=19, row_group_size=rows, **options)


def build_parquet_bomb(folder: Path, size: int) -> None:
    # pyarrow's defaults put up to 1024 values in a page: all 300 MB are one page, which must be
    # decompressed whole; the reader refuses it from its header (over PARQUET_PAGE_BYTES).
    _bomb(folder, size, "bomb.parquet")


def build_parquet_dense(folder: Path, size: int) -> None:
    # The same 300 MB in 1 MiB pages: readable, so this case measures the batched decode.
    _bomb(folder, size, "dense.parquet", write_batch_size=1, data_page_size=MB)


CASES = {
    "bad_lines": (build_bad_lines, 1024 * MB),
    "json_array": (build_json_array, 100 * MB),
    "parquet_bomb": (build_parquet_bomb, 300 * MB),
    "parquet_dense": (build_parquet_dense, 300 * MB),
}


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(folder: Path, out: Path) -> None:
    """Ingest one domain and print {"baseline_mb", "peak_mb", ...} as JSON."""
    from assets.corpora.counting import tally
    from assets.corpora.writing import write_domain

    baseline = _rss_kb("VmRSS")
    try:  # reset VmHWM to the current RSS, so the imports' transient peak is not counted
        Path("/proc/self/clear_refs").write_text("5")
        reset = True
    except OSError:
        reset = False
    started = time.perf_counter()
    written = write_domain(folder, out)
    result = written.read
    counted = tally(folder, result.file_reads, len(result.refused)).counted
    peak = _rss_kb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"baseline_mb": baseline / 1024, "peak_mb": peak / 1024, "over_mb": (peak - baseline) / 1024,
                      "seconds": time.perf_counter() - started, "kept": result.rows_kept,
                      "quarantined": result.rows_quarantined, "counted": counted}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the issue's sizes")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), Path(args.child[1]))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="hostile-memory-", dir=os.environ.get("HOSTILE_TMP")) as tmp:
        for name in args.cases.split(","):
            build, size = CASES[name]
            folder, out = Path(tmp) / "landing" / name.replace("_", "-"), Path(tmp) / "out" / name
            folder.mkdir(parents=True)
            out.mkdir(parents=True)
            build(folder, int(size * args.scale))
            on_disk = sum(p.stat().st_size for p in folder.iterdir())
            done = subprocess.run([sys.executable, __file__, "--child", str(folder), str(out)],
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                results[name] = {"error": done.stderr.strip().splitlines()[-1:], "file_mb": on_disk / MB}
            else:
                results[name] = {"file_mb": on_disk / MB, **json.loads(done.stdout.strip().splitlines()[-1])}
            for path in folder.iterdir():
                path.unlink()
            for path in out.iterdir():
                path.unlink()
    print(f"{'case':<14}{'file MB':>10}{'over baseline MB':>18}{'seconds':>10}{'kept':>12}{'quarantined':>13}")
    for name, row in results.items():
        if "error" in row:
            print(f"{name:<14}{row['file_mb']:>10.1f}  failed: {row['error']}")
            continue
        print(f"{name:<14}{row['file_mb']:>10.1f}{row['over_mb']:>18.0f}{row['seconds']:>10.1f}"
              f"{row['kept']:>12}{row['quarantined']:>13}")
    worst = max((row.get("over_mb", float("inf")) for row in results.values()), default=0.0)
    print(json.dumps({"scale": args.scale, "target_mb": TARGET_MB, "within_target": worst <= TARGET_MB,
                      "cases": {name: {k: (round(v, 1) if isinstance(v, float) else v) for k, v in row.items()}
                                for name, row in results.items()}}))


if __name__ == "__main__":
    main()
