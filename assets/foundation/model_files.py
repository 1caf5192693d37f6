"""What loading a base model needs, and the content-addressed copy every later step reads.

`base_model` fingerprints the base once, but tokenization, training, evaluation and merging read
it later, possibly days later. Reading a user's directory in place would let an in-place edit (new
weights, another tokenizer) slip in under the old data version, so `base_model` copies the files
loading needs under the artifacts, in a folder named by their content, and every later step reads
that copy. Everything else in the directory (README, .git, optimizer states, other weight formats)
stays behind.

Weights are safetensors only. Pickled `pytorch_model*.bin` weights can run code when they are
unpickled, so they are refused unless the user opts in; then they are converted once, here, into
safetensors in the copy, and no later step ever unpickles anything.

torch / transformers are imported inside the function that converts: importing this is cheap.
"""

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from assets.common.atomic import atomic_directory, locked_temp_directory
from assets.common.hashing import digests_fingerprint, file_sha256

CONFIG_FILES = ("config.json", "generation_config.json")
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json",
)
# The names `from_pretrained` looks for (no `variant`): one file, or an index and the shards it
# lists. Other *.safetensors files in a repo (Mistral's consolidated.safetensors, an
# adapter_model.safetensors, a model.fp16.safetensors variant) are never loaded, so never copied.
SAFETENSORS_FILE, SAFETENSORS_INDEX = "model.safetensors", "model.safetensors.index.json"
PICKLED_FILE, PICKLED_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
OPT_IN = "set BaseModelSource.allow_pickled_weights: true (or LORALINE_ALLOW_PICKLED_WEIGHTS=1)"

_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class ModelFiles:
    """The files of one model directory that loading needs."""

    directory: Path
    files: dict[str, Path]  # name in the copy -> file to read (a symlink is read through)
    pickled: bool  # the weights are pytorch_model*.bin, to be converted into safetensors
    skipped: tuple[str, ...]  # top-level names left behind

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files.values())


@dataclass(frozen=True)
class ModelCopy:
    path: Path  # <root>/<prefix>-<fingerprint[:16]>
    fingerprint: str  # sha256 over the copied names and the source files' contents
    files: tuple[str, ...]  # what the copy holds
    bytes: int


def weight_files(directory: Path, single: str, index: str) -> list[str] | None:
    """The weight files `from_pretrained` would read: `single`, or `index` and its shards; None if
    neither is there. A shard the index names but the directory lacks is an error, not a gap."""
    if _regular_file(directory / single):
        return [single]
    if not _regular_file(directory / index):
        return None
    shards = index_shards(directory / index)
    for shard in shards:
        if not _regular_file(directory / shard):
            raise ValueError(f"{directory / index} lists shard {shard}, which is missing from {directory}")
    return [index, *shards]


def index_shards(index: Path) -> list[str]:
    """The shard file names a `*.index.json` weight index maps tensors to."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{index} is not a weight index (a JSON object with a weight_map): {error}") from error
    for shard in shards:
        # The copy is flat and the names come from a file we did not write: no paths, no escapes.
        if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
            raise ValueError(f"{index} names shard {shard!r}, which is not a file name in that directory")
    return shards


def select_model_files(directory: Path, allow_pickled: bool, label: str | None = None) -> ModelFiles:
    """What loading needs from `directory`; raises when it has no loadable weights or only pickled ones.

    `label` names the model in messages (default: the directory).
    """
    directory = Path(directory)
    label = label or f"base model directory {directory}"
    if not _regular_file(directory / "config.json"):
        raise ValueError(f"{label} has no config.json (not a Hugging Face model directory)")
    names = [name for name in (*CONFIG_FILES, *TOKENIZER_FILES) if _regular_file(directory / name)]
    weights = weight_files(directory, SAFETENSORS_FILE, SAFETENSORS_INDEX)
    pickled = False
    if weights is None:
        weights = weight_files(directory, PICKLED_FILE, PICKLED_INDEX)
        if weights is None:
            others = sorted(p.name for p in directory.iterdir() if p.name.endswith(".safetensors"))
            raise ValueError(
                f"{label} has no weights that load: neither {SAFETENSORS_FILE} nor {SAFETENSORS_INDEX}"
                + (f" (it has {', '.join(others)}, which transformers does not load by default)" if others else "")
            )
        if not allow_pickled:
            raise ValueError(
                f"{label} has only pickled weights ({', '.join(w for w in weights if w.endswith('.bin'))}). "
                "loraline loads safetensors only by default, because unpickling a file can run code "
                f"hidden in it. If you trust this model, {OPT_IN}: base_model then converts the "
                "weights once into safetensors, and every later step loads those."
            )
        pickled = True
    files = {name: directory / name for name in [*names, *weights]}
    skipped = tuple(sorted(p.name for p in directory.iterdir() if p.name not in files))
    return ModelFiles(directory, files, pickled, skipped)


def publish_model_copy(selection: ModelFiles, root: Path, prefix: str) -> ModelCopy:
    """Copy (or, for pickled weights, convert) `selection` into `<root>/<prefix>-<fingerprint16>`.

    The fingerprint covers the source files, so the same content maps to one folder: it is reused
    when already there and never overwritten; an edited source gets a new folder and the old one
    stays for the runs that recorded it. The bytes are hashed once, then hashed again while
    copying, and a difference (the source changed meanwhile) fails the copy.
    """
    digests = {name: file_sha256(path) for name, path in selection.files.items()}
    fingerprint = digests_fingerprint(digests)
    final = Path(root) / f"{prefix}-{fingerprint[:16]}"
    if not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            if selection.pickled:
                _publish_converted(selection, digests, final)
            else:
                with atomic_directory(final) as target:
                    _copy_verified(selection, digests, target)
        except FileExistsError:
            if not final.is_dir():
                raise
            # Another run published the same content meanwhile; content-addressed, so it is ours too.
    files = tuple(sorted(p.name for p in final.iterdir()))
    return ModelCopy(final, fingerprint, files, sum((final / name).stat().st_size for name in files))


def convert_pickled_weights(source: Path, target: Path, origin: Path | None = None) -> None:
    """Load `source` (pickled weights) with transformers and save it into `target` as safetensors.

    `origin` is the directory `source` was copied from, for messages (default: `source`).
    """
    from transformers import AutoModelForCausalLM

    # dtype="auto" keeps the stored dtype (a bf16 checkpoint stays bf16, not upcast to float32).
    model, info = AutoModelForCausalLM.from_pretrained(
        source, use_safetensors=False, dtype="auto", trust_remote_code=False, output_loading_info=True
    )
    # A missing tensor would be random-initialised and saved as if it were the model's own.
    problems = {key: info.get(key) for key in ("missing_keys", "mismatched_keys") if info.get(key)}
    if problems:
        raise ValueError(f"the pickled weights in {origin or source} do not fit {type(model).__name__}: {problems}")
    model.save_pretrained(target)  # transformers 5 always writes safetensors (safe_serialization is gone)
    if weight_files(target, SAFETENSORS_FILE, SAFETENSORS_INDEX) is None:
        raise RuntimeError(f"converting {origin or source} wrote no safetensors weights into {target}")


def _publish_converted(selection: ModelFiles, digests: dict[str, str], final: Path) -> None:
    # Convert from a verified private copy, so what is converted is exactly what was fingerprinted.
    # Locked while it lives, so a kill leaves a folder the next step's sweep recognises as dead.
    with locked_temp_directory(final.parent, f".{final.name}.pickled-") as staging:
        _copy_verified(selection, digests, staging)
        with atomic_directory(final) as target:
            convert_pickled_weights(staging, target, selection.directory)  # config, generation config, weights
            for name in selection.files:
                if name in TOKENIZER_FILES:
                    shutil.copyfile(staging / name, target / name)


def _copy_verified(selection: ModelFiles, digests: dict[str, str], target: Path) -> None:
    for name, source in selection.files.items():
        if _copy_hashing(source, target / name) != digests[name]:
            raise RuntimeError(
                f"{source} changed while base_model was copying it; materialize base_model again "
                "once the directory is no longer being written"
            )


def _copy_hashing(source: Path, destination: Path) -> str:
    """Copy `source` (following symlinks: HF cache snapshots link into blobs) and hash what was copied."""
    digest = hashlib.sha256()
    with open(source, "rb") as reader, open(destination, "wb") as writer:
        while chunk := reader.read(_CHUNK_BYTES):
            digest.update(chunk)
            writer.write(chunk)
    return digest.hexdigest()


def _regular_file(path: Path) -> bool:
    """True for a file or a symlink to one; a dangling symlink among needed names is an error."""
    if path.is_symlink() and not path.exists():
        raise ValueError(f"{path} is a symlink to {path.readlink()}, which does not exist")
    return path.is_file()
