"""One frozen base, every registered adapter, and batched generation with a different adapter per row.

`Engine.complete` is the one generation function: the server's batcher calls it with whatever
requests arrived together, `loraline generate` with one. A batch is one `generate` call on the
PeftModel with per-row `adapter_names` (peft's mixed-adapter batches: each LoRA layer runs the base
matmul once and adds each row's own low-rank update; "__base__" rows get none). Prompts are
left-padded (attention mask and position ids skip the pads), so a row's tokens do not depend on
which other rows share its batch.

Per-row sampling without giving up the batch: generation runs greedy, and a logits processor
replaces the scores of every row with temperature > 0 by a one-hot of a token drawn with that row's
own seeded generator, so a request's output depends on its seed only, never on its neighbours.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from assets.serving.registry import read_manifest, read_registry_file, served

BASE = "base"  # the model name that routes to the bare base
PEFT_BASE = "__base__"  # peft's adapter_names entry for "no adapter on this row"
log = logging.getLogger("loraline.serving")


class UnknownModel(KeyError):
    """A request named a model the engine does not serve (now)."""


@dataclass
class GenerationRequest:
    model: str  # "base" or a domain
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0  # 0: greedy
    seed: int | None = None
    stop: tuple[str, ...] = ()
    on_text: Callable[[str], None] | None = None  # streaming: called with each new piece of text (worker thread)


@dataclass
class GenerationResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length"]


class Engine:
    """The base loaded once (4-bit NF4 or full precision) and the registry's adapters on top."""

    def __init__(self, registry: Path, precision: Literal["4bit", "full"] = "4bit", dtype: str = "auto", device: str = "auto") -> None:
        from assets.models.chat_format import chat_format
        from assets.models.loading import load_full_precision_base, load_quantized_base, load_tokenizer, pick_compute_dtype, pick_device

        self.registry = registry
        info = read_registry_file(registry)["base"]
        self.base_name, self.base_fingerprint, base_dir = info["name"], info["fingerprint"], Path(info["path"])
        self.device = pick_device(device)  # type: ignore[arg-type]
        self.dtype = pick_compute_dtype(dtype, self.device)
        self.precision = precision
        load = load_quantized_base if precision == "4bit" else load_full_precision_base
        self.model = load(base_dir, self.dtype, self.device)
        self.model.eval()
        self.tokenizer = load_tokenizer(base_dir)
        self.format = chat_format(self.tokenizer)
        self.stop_ids = self.format.stop_token_ids(self.tokenizer.eos_token_id)
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.adapters: dict[str, Path] = {}  # domain -> the version folder loaded
        self._names: dict[str, str] = {}  # domain -> its adapter's name inside peft
        self._orphans: list[str] = []  # peft adapters no domain routes to any more
        self._loads = 0
        self.refresh()

    # --- the registry -------------------------------------------------------------------------

    def models(self) -> list[str]:
        return [BASE, *sorted(self.adapters)]

    def refresh(self) -> dict[str, list[str]]:
        """Load new domains, swap changed ones, drop removed ones (call between batches only).

        `adapters` is replaced, never changed in place: request handlers on other threads read it.
        Each load gets its own peft name (`<domain>__<n>`), so a swapped domain's new weights never
        collide with the old ones, which peft cannot delete while they are its only adapter.
        """
        wanted = {}
        for domain, version in served(self.registry).items():
            manifest = read_manifest(version)
            if manifest["base_fingerprint"] != self.base_fingerprint:
                log.warning(f"domain {domain!r}: {version} was trained on another base ({manifest['base_fingerprint'][:16]}); not served")
                continue
            wanted[domain] = version
        if wanted == self.adapters:
            return {"added": [], "swapped": [], "removed": []}
        names = dict(self._names)
        for domain, version in wanted.items():
            if self.adapters.get(domain) != version:
                names[domain] = self._load(domain, version)
        changes = {"added": sorted(set(wanted) - set(self.adapters)), "removed": sorted(set(self.adapters) - set(wanted)),
                   "swapped": sorted(d for d in set(wanted) & set(self.adapters) if wanted[d] != self.adapters[d])}
        for domain in [*changes["removed"], *changes["swapped"]]:
            self._orphans.append(self._names[domain])
        self.adapters, self._names = wanted, {d: names[d] for d in wanted}
        while self._orphans and len(self.model.peft_config) > 1:
            self.model.delete_adapter(self._orphans.pop())
        log.info(f"registry {self.registry}: {changes}")
        return changes

    def _load(self, domain: str, version: Path) -> str:
        from peft import PeftModel

        self._loads += 1
        name = f"{domain}__{self._loads}"
        if isinstance(self.model, PeftModel):
            self.model.load_adapter(str(version), adapter_name=name)
        else:
            self.model = PeftModel.from_pretrained(self.model, str(version), adapter_name=name)
        self.model.eval()
        return name

    # --- prompts ------------------------------------------------------------------------------

    def chat_prompt(self, messages: list[dict[str, str]]) -> list[int]:
        """The base's chat template with the assistant's turn opened, encoded as training encoded it."""
        from assets.models.chat_format import fold_system, render

        messages = messages if self.format.accepts_system else fold_system(messages)
        ids = self.tokenizer(render(self.tokenizer, self.format, messages, generation_prompt=True), add_special_tokens=False)["input_ids"]
        if self.format.adds_bos and (not ids or ids[0] != self.format.bos_id):
            ids.insert(0, self.format.bos_id)
        return ids

    def text_prompt(self, text: str) -> list[int]:
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        bos = self.format.document_bos
        return ids if bos is None else [bos, *ids]

    # --- generation ---------------------------------------------------------------------------

    def complete(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate for every request in one batched `generate` call, each row with its own adapter."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        names = self._names
        for request in requests:
            if request.model != BASE and request.model not in names:
                raise UnknownModel(request.model)
        width = max(len(r.prompt_ids) for r in requests)
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(r.prompt_ids)) + r.prompt_ids for r in requests], device=self.device)
        mask = torch.tensor([[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in requests], device=self.device)
        rows = _Rows(self.tokenizer, requests, width, set(self.stop_ids), self.device)
        options: dict[str, Any] = {}
        if hasattr(self.model, "peft_config"):  # a PeftModel since the first adapter was loaded
            options["adapter_names"] = [PEFT_BASE if r.model == BASE else names[r.model] for r in requests]
        with torch.no_grad():
            self.model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=max(r.max_tokens for r in requests), do_sample=False,
                pad_token_id=pad, eos_token_id=self.stop_ids, logits_processor=LogitsProcessorList([rows.sampler]),
                stopping_criteria=StoppingCriteriaList([rows.stopper]), **options,
            )
        return rows.results()


class _Rows:
    """Per-row state of one batch: its sampler, its stop rules, its text so far, its stream."""

    def __init__(self, tokenizer: Any, requests: list[GenerationRequest], width: int, stop_ids: set[int], device: str) -> None:
        import torch

        self.tokenizer, self.requests, self.width, self.stop_ids = tokenizer, requests, width, stop_ids
        self.done = [False] * len(requests)
        self.reason: list[Literal["stop", "length"]] = ["length"] * len(requests)
        self.count = [0] * len(requests)  # generated tokens that count (the stop token excluded)
        self.text = [""] * len(requests)
        self.sent = [0] * len(requests)  # characters already streamed
        self.generators = [torch.Generator(device=device).manual_seed(r.seed if r.seed is not None else int(torch.seed() % 2**63))
                           if r.temperature > 0 else None for r in requests]
        self.hold = max((len(s) for r in requests for s in r.stop), default=1) - 1  # a stop string may still be forming

    def sampler(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for row, generator in enumerate(self.generators):
            if generator is not None and not self.done[row]:
                probs = torch.softmax(scores[row].float() / self.requests[row].temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)
                scores[row] = torch.where(torch.arange(scores.shape[-1], device=scores.device) == token, 0.0, float("-inf"))
        return scores

    def stopper(self, input_ids: Any, scores: Any, **_: Any) -> Any:
        import torch

        for row, request in enumerate(self.requests):
            if self.done[row]:
                continue
            new = input_ids[row, self.width:].tolist()
            if new and new[-1] in self.stop_ids:
                self._finish(row, "stop")
                continue
            self.count[row] = len(new)
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in request.stop if s) if i >= 0), default=-1)
            if cut >= 0:
                self.text[row] = text[:cut]
                self._finish(row, "stop")
            elif len(new) >= request.max_tokens:
                self.text[row] = text
                self._finish(row, "length")
            else:
                self.text[row] = text
                safe = len(text) - self.hold
                while safe > self.sent[row] and text[safe - 1] == "\ufffd":  # half a multi-byte character
                    safe -= 1
                self._emit(row, safe)
        return torch.tensor(self.done, device=input_ids.device)

    def _finish(self, row: int, reason: Literal["stop", "length"]) -> None:
        self.done[row], self.reason[row] = True, reason
        self._emit(row, len(self.text[row]))

    def _emit(self, row: int, upto: int) -> None:
        callback = self.requests[row].on_text
        if upto > self.sent[row]:
            if callback is not None:
                callback(self.text[row][self.sent[row]:upto])
            self.sent[row] = upto

    def results(self) -> list[GenerationResult]:
        return [GenerationResult(self.text[i], len(r.prompt_ids), self.count[i], self.reason[i]) for i, r in enumerate(self.requests)]
