"""One merged model -> GGUF files + Modelfile, each file read back and the f16 one compared by logits.

Pure: no dagster. `export_gguf` writes into a folder the caller makes atomic.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from assets.release.gguf.check import LogitParity, logit_parity, read_back
from assets.release.gguf.modelfile import derive_pieces, modelfile
from assets.release.gguf.writer import GgufFile, gguf_tensors, unsupported_reason, write_gguf
from assets.settings.gguf import GgufConfig


@dataclass(frozen=True)
class ExportReport:
    skipped: str = ""  # why nothing was written (an unsupported family or tokenizer); "" when exported
    files: list[GgufFile] = field(default_factory=list)
    parity: LogitParity | None = None  # f16 file against the merged model (the gated comparison)
    reloaded: dict[str, str] = field(default_factory=dict)  # quant -> how transformers read it back
    problems: list[str] = field(default_factory=list)  # read-back mismatches; any fails the check
    template: str = ""  # how the Modelfile's TEMPLATE came about

    def summary(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        return {
            "files": {f.quant: {"file": f.path.name, "size_bytes": f.size_bytes, "tensors": f.tensors, "tensor_types": f.tensor_types}
                      for f in self.files},
            "parity_f16": asdict(self.parity),
            "reloaded_by_transformers": self.reloaded,
            "problems": self.problems,
            "modelfile_template": self.template,
        }


def export_gguf(model_dir: Path, out_dir: Path, domain: str, config: GgufConfig, inputs: list[list[int]]) -> ExportReport:
    """Write `<domain>-<quant>.gguf` for each configured type and `Modelfile` into `out_dir`."""
    reason = unsupported_reason(model_dir)
    if reason:
        (out_dir / "skipped.txt").write_text(reason + "\n", encoding="utf-8")
        return ExportReport(skipped=reason)
    expected = gguf_tensors(model_dir)
    files, problems, reloaded, parity = [], [], {}, None
    for quant in config.quant_types:
        written = write_gguf(model_dir, out_dir / f"{domain}-{quant}.gguf", quant, f"loraline-{domain}")
        files.append(written)
        problems += _read_back_problems(written, expected)
        measured = logit_parity(model_dir, written.path, inputs)
        reloaded[quant] = (f"loaded by transformers' GGUF loader, de-quantised to float32; max |logit diff| "
                           f"{measured.max_abs_diff:.2e} ({measured.relative_diff:.2e} of the largest logit)")
        if quant == "f16":
            parity = measured
    template = _write_modelfile(model_dir, out_dir, min(files, key=lambda f: f.size_bytes).path.name)
    return ExportReport(files=files, parity=parity, reloaded=reloaded, problems=problems, template=template)


def _read_back_problems(written: GgufFile, expected: dict[str, tuple[int, ...]]) -> list[str]:
    """What gguf's reader finds different from the weights that were written, named per file."""
    back = read_back(written.path)
    problems = []
    if set(back.tensors) != set(expected):
        problems.append(f"{written.path.name}: tensors {sorted(set(back.tensors) ^ set(expected))} differ from the model's")
    wrong = [name for name, shape in expected.items() if back.tensors.get(name, shape) != shape]
    if wrong:
        problems.append(f"{written.path.name}: shapes differ for {wrong}")
    if back.chat_template is None:
        problems.append(f"{written.path.name}: no tokenizer.chat_template")
    return problems


def _write_modelfile(model_dir: Path, out_dir: Path, gguf_name: str) -> str:
    from assets.models.chat_format import chat_format
    from assets.models.loading import load_tokenizer

    tokenizer = load_tokenizer(model_dir)
    fmt = chat_format(tokenizer)
    pieces, why_not = derive_pieces(tokenizer, fmt)
    stops = [tokenizer.convert_ids_to_tokens(i) for i in fmt.stop_token_ids(tokenizer.eos_token_id)]
    (out_dir / "Modelfile").write_text(modelfile(gguf_name, stops, pieces), encoding="utf-8")
    if pieces is None:
        return f"omitted ({why_not}); Ollama reads the chat template embedded in the GGUF"
    return "derived from the chat template (checked to reproduce its rendering)"
