"""A clean corpus of any size tokenized in bounded memory, one worker process per core.

The clean parquet is read in record batches (chunks of rows); each chunk is split by content hash
and encoded (batched.encode_rows) by a pool of worker processes that load the tokenizer once each;
the chunks come back in order, as Arrow record batches, and are appended to the train/eval
datasets on disk as they arrive (the layout `Dataset.save_to_disk` writes, which
`datasets.load_from_disk` reads). Only a few chunks are in flight at a time, so memory does not
grow with the corpus; what stays in memory is one small row per example (the profile the checks
read) and the rejected rows.

Pure: no dagster. The caller passes `log` (the asset passes context.log.info) for progress lines.
"""

import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from assets.common.memory import release_freed_memory
from assets.settings.tokenization import TokenizationConfig
from assets.tokenization.tokenizing import REJECTED_SCHEMA, split_of
from assets.tokenization.totals import COUNTS, PROFILE_SCHEMA, SPLITS, Progress, Totals, compact_profile

CHUNK_ROWS = 1000  # rows per task: ~1 MB of text, big enough to amortise a task's overhead
# ...and at most this much text per task (one row at least): a worker holds ~140 bytes per byte of text
# of its chunk while encoding it, so 1000 long documents (max_chars 50,000 each) would need gigabytes.
CHUNK_BYTES = 2 * 2**20
SERIAL_ROWS = 5000  # below this many rows a pool costs more to start (~3 s a worker) than it saves
MAX_WORKERS = 8  # past a few processes the parent's writing and the disk become the limit
IN_FLIGHT_PER_WORKER = 2  # chunks queued per worker: keeps them busy, bounds what is held in memory
SHARD_BYTES = 500 * 2**20  # save_to_disk's default max_shard_size
TRIM_EVERY = 1  # chunks between malloc_trim calls in the parent: every 8 let RSS climb 343 -> 422 MB over 200 MB, every 1 held 255-336 MB
READ_COLUMNS = ("kind", "roles", "contents", "content_hash", "split_key", "source_file", "line")


@dataclass(frozen=True)
class Chunk:
    """What one chunk of rows became."""

    batches: dict[str, Any]  # split -> pyarrow RecordBatch (input_ids, labels, length, source_file, line)
    profile: dict[str, np.ndarray]  # per example kept and per row rejected, in row order (PROFILE_SCHEMA + kept)
    rejected: dict[str, list]  # REJECTED_SCHEMA columns
    counts: dict[str, int]
    rows: int
    text_bytes: int

    def __reduce__(self) -> tuple:
        """Pickled (worker -> parent) with each labels column as the mask of supervised tokens: a label
        is its token's id or IGNORE_INDEX, so one byte a token says what eight did (the pipe carried
        about 13 bytes per byte of text, most of it labels; the parent rebuilds them with numpy)."""
        compact = {split: _without_labels(batch) for split, batch in self.batches.items()}
        return _with_labels, (compact, self.profile, self.rejected, self.counts, self.rows, self.text_bytes)


def _without_labels(batch: Any) -> tuple[Any, Any, np.ndarray]:
    from assets.models.batches import IGNORE_INDEX

    labels = batch.column("labels")
    mask = labels.values.to_numpy() != IGNORE_INDEX
    return batch.schema, batch.drop_columns(["labels"]), mask


def _with_labels(compact: dict[str, tuple[Any, Any, np.ndarray]], *rest: Any) -> Chunk:
    import pyarrow as pa

    from assets.models.batches import IGNORE_INDEX

    batches = {}
    for split, (schema, batch, mask) in compact.items():
        ids = batch.column("input_ids")
        labels = np.where(mask, ids.values.to_numpy().astype(np.int64), IGNORE_INDEX)
        columns = {name: batch.column(name) for name in batch.schema.names}
        columns["labels"] = pa.ListArray.from_arrays(ids.offsets, pa.array(labels))
        batches[split] = pa.RecordBatch.from_arrays([columns[name] for name in schema.names], schema=schema)
    return Chunk(batches, *rest)


def encode_chunk(tokenizer: Any, fmt: Any, batch: Any, config: TokenizationConfig, schema: Any = None) -> Chunk:
    """One record batch of the clean corpus: split, encode, and lay out as Arrow columns (`schema`:
    dataset_schema(), passed to workers so that they never import `datasets`, ~70 MB each)."""
    import pyarrow as pa

    from assets.tokenization.batched import encode_rows
    from assets.tokenization.encoding import supervised

    columns = {name: batch.column(name).to_pylist() for name in READ_COLUMNS if name in batch.schema.names}
    kinds, roles, contents = columns["kind"], columns["roles"], columns["contents"]
    keys = columns.get("split_key") or [None] * len(kinds)
    # Near-duplicates share their cluster's split key, so none sits on the other side of the split.
    splits = [split_of(key or digest, config.eval_fraction, config.split_salt) for key, digest in zip(keys, columns["content_hash"])]
    encoded = encode_rows(tokenizer, fmt, kinds, roles, contents, config.max_seq_len)
    counts = dict.fromkeys(COUNTS, 0)
    profile: dict[str, list] = {name: [] for name in (*PROFILE_SCHEMA, "kept")}
    rejected: dict[str, list] = {name: [] for name in REJECTED_SCHEMA}
    parts: dict[str, dict[str, list]] = {s: {"ids": [], "labels": [], "row": []} for s in SPLITS}
    for row, (split, result) in enumerate(zip(splits, encoded)):
        counts["windowed_documents"] += kinds[row] == "text" and len(result.examples) > 1
        counts["split_conversations"] += kinds[row] != "text" and len(result.examples) > 1
        counts["system_folded_rows"] += result.system_folded
        counts["exchanges_dropped"] += result.exchanges_dropped
        if result.rejected:
            for name, value in zip(REJECTED_SCHEMA, (columns["source_file"][row], columns["line"][row], columns["content_hash"][row], result.rejected)):
                rejected[name].append(value)
            for name, value in zip(profile, (split, 0, 0, False, False)):
                profile[name].append(value)
            continue
        for ids, labels, truncated in result.examples:
            counts["truncated_examples"] += truncated
            for name, value in zip(profile, (split, len(ids), supervised(labels), truncated, True)):
                profile[name].append(value)
            for name, value in zip(("ids", "labels", "row"), (ids, labels, row)):
                parts[split][name].append(value)
    batches = {}
    for split, part in parts.items():
        lengths = np.array([len(ids) for ids in part["ids"]], dtype=np.int64)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        flat = {name: np.concatenate(part[name]) if part[name] else np.zeros(0, np.int64) for name in ("ids", "labels")}
        rows = np.array(part["row"], dtype=np.int64)
        batches[split] = pa.RecordBatch.from_arrays([
            pa.ListArray.from_arrays(offsets, pa.array(flat["ids"].astype(np.int32))),
            pa.ListArray.from_arrays(offsets, pa.array(flat["labels"])),
            pa.array(lengths),
            pa.array([columns["source_file"][r] for r in rows], pa.string()),
            pa.array([columns["line"][r] for r in rows], pa.int64()),
        ], schema=dataset_schema() if schema is None else schema)
    text_bytes = sum(len(c.encode()) for row in contents for c in row)
    return Chunk(batches, compact_profile(profile), rejected, counts, len(kinds), text_bytes)


def dataset_features() -> Any:
    """The columns of train/ and eval/, typed as `Dataset.from_dict` typed them (input_ids int32)."""
    from datasets import Features, List, Value

    return Features({"input_ids": List(Value("int32")), "labels": List(Value("int64")), "length": Value("int64"),
                     "source_file": Value("string"), "line": Value("int64")})


def dataset_schema() -> Any:
    return dataset_features().arrow_schema


class DatasetWriter:
    """Appends record batches to a `save_to_disk` layout: data-NNNNN-of-MMMMM.arrow shards of at most
    SHARD_BYTES, state.json and dataset_info.json, so `datasets.load_from_disk` reads it as it reads
    what save_to_disk wrote."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True)
        self.shards: list[Path] = []
        self.writer: Any = None
        self.rows = 0

    def write(self, batch: Any) -> None:
        import pyarrow as pa
        from datasets.arrow_writer import ArrowWriter

        if not batch.num_rows:
            return
        if self.writer is None or self.writer._num_bytes >= SHARD_BYTES:
            self._close_shard()
            self.shards.append(self.directory / f"shard-{len(self.shards):05d}.arrow")
            self.writer = ArrowWriter(features=dataset_features(), path=str(self.shards[-1]))
        self.writer.write_table(pa.Table.from_batches([batch]))
        self.rows += batch.num_rows

    def close(self) -> int:
        """Name the shards as save_to_disk names them, write its two JSON files; the row count."""
        from dataclasses import asdict

        from datasets import DatasetInfo
        from datasets.arrow_writer import ArrowWriter
        from datasets.fingerprint import generate_random_fingerprint

        if not self.shards:  # an empty split is still a dataset (the caller refuses it anyway)
            self.shards.append(self.directory / "shard-00000.arrow")
            self.writer = ArrowWriter(features=dataset_features(), path=str(self.shards[-1]))
        self._close_shard()
        names = [f"data-{i:05d}-of-{len(self.shards):05d}.arrow" for i in range(len(self.shards))]
        for shard, name in zip(self.shards, names):
            shard.rename(self.directory / name)
        state = {"_data_files": [{"filename": name} for name in names], "_fingerprint": generate_random_fingerprint(),
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None, "_output_all_columns": False, "_split": None}
        (self.directory / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        info = asdict(DatasetInfo(features=dataset_features()))
        (self.directory / "dataset_info.json").write_text(json.dumps({k: info[k] for k in sorted(info)}, indent=2), encoding="utf-8")
        return self.rows

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.finalize()
            self.writer.close()
            self.writer = None


@dataclass(frozen=True)
class Streamed:
    stats: dict[str, float | int]
    # One row per example kept and one per record rejected (supervised_tokens 0): PROFILE_SCHEMA.
    profile: pl.DataFrame
    rejected: pl.DataFrame  # REJECTED_SCHEMA
    workers: int


def stream_tokenize(rows: Path, tokenizer_dir: Path, config: TokenizationConfig, out: Path, *, workers: int | None = None,
                    log: Callable[[str], None] | None = None, chunk_rows: int = CHUNK_ROWS, chunk_bytes: int = CHUNK_BYTES) -> Streamed:
    """Tokenize the clean corpus `rows` (parquet) into `out`/train and `out`/eval (load_from_disk
    layout). `workers`: processes (default: one per available core, 1 = in this process; a small
    corpus always runs here). Raises ValueError when a split would be empty."""
    import pyarrow.parquet as pq

    config = TokenizationConfig(**config.model_dump())  # plain settings travel to the workers
    # pre_buffer=False: with pyarrow's default, a whole-file iter_batches keeps every column chunk it
    # pre-buffered until the file is closed (measured: 69 MB live at the end of 200 MB of text, 20 MB
    # at 50 MB; 6 MB peak without), so the parent grew with the corpus.
    source = pq.ParquetFile(rows, pre_buffer=False)
    total = source.metadata.num_rows
    count = worker_count(workers, total)
    batches = by_text_bytes(source.iter_batches(batch_size=chunk_rows, columns=[c for c in READ_COLUMNS if c in source.schema_arrow.names]),
                            chunk_bytes)
    writers = {split: DatasetWriter(out / split) for split in SPLITS}
    totals, progress = Totals(), Progress(total, count, log)
    for number, chunk in enumerate(_encoded(batches, Path(tokenizer_dir), config, count), 1):
        for split in SPLITS:
            writers[split].write(chunk.batches[split])
        totals.add(chunk)
        progress.update(chunk)
        del chunk
        if number % TRIM_EVERY == 0:
            release_freed_memory()
    for writer in writers.values():
        writer.close()
    progress.done(totals)
    stats, profile, rejected = totals.finish()
    return Streamed(stats, profile, rejected, count)


def by_text_bytes(batches: Iterator[Any], limit: int) -> Iterator[Any]:
    """Each record batch cut into slices of at most `limit` bytes of `contents` text (a row longer
    than that alone)."""
    import pyarrow.compute as pc

    for batch in batches:
        contents = batch.column("contents")
        lengths = pc.fill_null(pc.binary_length(contents.flatten()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = contents.offsets.to_numpy()  # into the values, also for a slice of a larger array
        ends = np.concatenate([[0], np.cumsum(lengths)])[offsets - offsets[0]]  # text bytes before each row
        start = 0
        while start < batch.num_rows:
            # The last row whose end is within `limit` of this slice's start; at least one row.
            stop = max(start + 1, int(np.searchsorted(ends, ends[start] + limit, side="right")) - 1)
            yield batch.slice(start, stop - start)
            start = stop


def worker_count(requested: int | None, rows: int) -> int:
    if rows < SERIAL_ROWS:
        return 1
    if requested is not None:
        return max(1, requested)
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(available, MAX_WORKERS))


def _encoded(batches: Iterator[Any], tokenizer_dir: Path, config: TokenizationConfig, workers: int) -> Iterator[Chunk]:
    """Chunks in order: here, or in a pool of `workers` spawned processes with a bounded queue."""
    schema = dataset_schema()
    if workers == 1:
        _load(str(tokenizer_dir))
        for batch in batches:
            yield _work(batch, config, schema)
        return
    import multiprocessing

    # spawn, not fork: the parent may hold torch's and the tokenizer's threads, which fork does not copy.
    with multiprocessing.get_context("spawn").Pool(workers, initializer=_load, initargs=(str(tokenizer_dir),)) as pool:
        pending: deque = deque()
        for batch in batches:
            pending.append(pool.apply_async(_work, (batch, config, schema)))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


_WORKER: dict[str, Any] = {}  # this process's tokenizer and chat format, loaded once


def _load(tokenizer_dir: str) -> None:
    if _WORKER.get("dir") == tokenizer_dir:
        return
    # One process per core already: the tokenizer's own thread pool would only oversubscribe them.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from assets.models.chat_format import chat_format

    tokenizer = load_tokenizer_without_torch(Path(tokenizer_dir))
    _WORKER.update(dir=tokenizer_dir, tokenizer=tokenizer, fmt=chat_format(tokenizer))


def load_tokenizer_without_torch(tokenizer_dir: Path) -> Any:
    """loading.load_tokenizer's tokenizer, built from the class its tokenizer_config.json names.

    AutoTokenizer reads the model config through transformers' configuration code, which imports
    torch: ~190 MB more in every worker (measured: 252 MB RSS against 67 MB), for a tokenizer that
    never touches a tensor. The named fast class alone loads the same tokenizer.json and
    tokenizer_config.json (a test checks they encode alike); anything else (a slow or unknown
    class, no tokenizer.json) goes through load_tokenizer."""
    import transformers
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    from assets.models.loading import load_tokenizer, pick_pad_token

    config_file = tokenizer_dir / "tokenizer_config.json"
    name = json.loads(config_file.read_text(encoding="utf-8")).get("tokenizer_class") if config_file.exists() else None
    # transformers' lazy module imports only the named class's own module.
    cls = getattr(transformers, name, None) if isinstance(name, str) and name.isidentifier() else None
    if not (isinstance(cls, type) and issubclass(cls, TokenizersBackend) and (tokenizer_dir / "tokenizer.json").exists()):
        return load_tokenizer(tokenizer_dir)
    tokenizer = cls.from_pretrained(tokenizer_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = pick_pad_token(tokenizer)
    return tokenizer


def _work(batch: Any, config: TokenizationConfig, schema: Any) -> Chunk:
    chunk = encode_chunk(_WORKER["tokenizer"], _WORKER["fmt"], batch, config, schema)
    release_freed_memory()
    return chunk
