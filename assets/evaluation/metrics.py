"""Evaluation of an adapter against its base on the domain's held-out split.

Both numbers come from the same model object on the same eval tokens: the base is the 4-bit model
with the adapter switched off, the adapter is the same model with it on. Loss is the mean
cross-entropy per supervised token (nats), so chat prompts do not dilute it. Bits per byte and the
task scores (exact match, ROUGE-L of greedy answers to held-out prompts) are defined in task_metrics.py.
"""

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.evaluation.task_generation import TaskPrompt, greedy_answers, score_tasks, supervised_bytes
from assets.evaluation.task_metrics import TaskScores, bits_per_byte, task_gate
from assets.models.batches import IGNORE_INDEX
from assets.models.loading import load_quantized_base, load_tokenizer, pick_compute_dtype
from assets.models.scoring import supervised_loss
from assets.settings.evaluation import EvaluationConfig


@dataclass(frozen=True)
class EvaluationReport:
    eval_loss_base: float
    eval_loss_adapter: float
    eval_tokens: int  # supervised tokens scored
    generations: list[dict[str, str]] = field(default_factory=list)
    eval_bytes: int = 0  # UTF-8 bytes the scored tokens decode to (bits per byte's denominator)
    task: TaskScores = field(default_factory=lambda: TaskScores(skipped="not run"))

    @property
    def perplexity_base(self) -> float:
        return math.exp(self.eval_loss_base)

    @property
    def perplexity_adapter(self) -> float:
        return math.exp(self.eval_loss_adapter)

    @property
    def improvement(self) -> float:
        return self.eval_loss_base - self.eval_loss_adapter

    def bits_per_byte(self, loss: float) -> float | None:
        """Mean NLL per token (nats) x tokens = total NLL, per byte of the text they spell, in bits."""
        return bits_per_byte(loss * self.eval_tokens, self.eval_bytes) if self.eval_bytes else None

    def numbers(self) -> dict[str, float | int]:
        bpb = {f"bits_per_byte_{side}": self.bits_per_byte(loss) for side, loss in (("base", self.eval_loss_base), ("adapter", self.eval_loss_adapter))}
        return {
            "eval_loss_base": self.eval_loss_base, "eval_loss_adapter": self.eval_loss_adapter,
            "perplexity_base": self.perplexity_base, "perplexity_adapter": self.perplexity_adapter, "eval_tokens": self.eval_tokens,
            **{key: value for key, value in bpb.items() if value is not None}, "eval_bytes": self.eval_bytes,
            **self.task.numbers(),
        }

    def gate(self, config: EvaluationConfig) -> tuple[bool, str]:
        """adapter_beats_base: on loss (min_improvement), or on the task metric domain.yaml names
        (gate_metric, gate_margin). The description says which metric decided."""
        if config.gate_metric == "loss":
            return self.beats_base(config.min_improvement), f"decided on eval loss: {self.describe(config.min_improvement)}"
        passed, why = task_gate(self.task, config.gate_metric, config.gate_margin)
        return passed, f"decided on {why}; eval loss {self.eval_loss_base:.4f} -> {self.eval_loss_adapter:.4f} (not gating)"

    def beats_base(self, min_improvement: float) -> bool:
        """The merge gate: lower eval loss than the base by more than `min_improvement` nats/token."""
        return self.improvement > min_improvement

    def describe(self, min_improvement: float) -> str:
        return (f"eval loss {self.eval_loss_base:.4f} -> {self.eval_loss_adapter:.4f} (improvement {self.improvement:.4f}, "
                f"required > {min_improvement})")


def evaluate_adapter(base_dir: Path, adapter_dir: Path, eval_dataset: Any, config: EvaluationConfig, device: str) -> EvaluationReport:
    from peft import PeftModel

    tokenizer = load_tokenizer(adapter_dir)
    base = load_quantized_base(base_dir, pick_compute_dtype(config.compute_dtype, device), device)
    model = PeftModel.from_pretrained(base, adapter_dir)
    pad = tokenizer.pad_token_id
    with model.disable_adapter():
        loss_base, tokens = supervised_loss(model, eval_dataset, pad, config.batch_size, device)
    loss_adapter, _ = supervised_loss(model, eval_dataset, pad, config.batch_size, device)
    samples = side_by_side(model, tokenizer, eval_dataset, config, device)
    task = score_tasks(model, tokenizer, eval_dataset, config, device)
    return EvaluationReport(loss_base, loss_adapter, tokens, samples, supervised_bytes(eval_dataset, tokenizer), task)


def side_by_side(model: Any, tokenizer: Any, eval_dataset: Any, config: EvaluationConfig, device: str) -> list[dict[str, str]]:
    """Greedy completions of the first eval prompts, base (adapter off) next to adapter.

    All prompts go in one left-padded batch per side (task_batch_size at a time): on a CPU a decoding
    step costs about the same for 1 or 32 rows, so this is one generation's time, not 2 x generations."""
    from assets.models.chat_format import chat_format

    # Stop at the template's end-of-turn token as well as EOS, as a chat model is served.
    stop = chat_format(tokenizer).stop_token_ids(tokenizer.eos_token_id)
    prompts, cuts = [], []
    for example in eval_dataset.select(range(min(config.generations, len(eval_dataset)))):
        ids, labels = example["input_ids"], example["labels"]
        first_answer = next((i for i, label in enumerate(labels) if label != IGNORE_INDEX), 0)
        # Chat: the prompt is everything before the first answer token. Text: a short lead.
        cut = first_answer if labels[0] == IGNORE_INDEX else min(16, len(ids) - 1)
        prompts.append(TaskPrompt(prompt_ids=ids[:cut], reference_ids=[]))  # no reference: up to max_new_tokens each
        cuts.append((ids, cut))
    if not prompts:
        return []
    args = (prompts, tokenizer.pad_token_id, stop, config.max_new_tokens, config.task_batch_size, device)
    with model.disable_adapter():
        base = greedy_answers(model, *args)
    adapter = greedy_answers(model, *args)
    return [
        {
            "prompt": tokenizer.decode(ids[:cut], skip_special_tokens=False),
            "reference": tokenizer.decode(ids[cut:], skip_special_tokens=True),
            "base": tokenizer.decode(base_out, skip_special_tokens=True),
            "adapter": tokenizer.decode(adapter_out, skip_special_tokens=True),
        }
        for (ids, cut), base_out, adapter_out in zip(cuts, base, adapter)
    ]


def generations_markdown(samples: list[dict[str, str]], width: int = 160) -> str:
    """A markdown table of prompt / reference / base / adapter, cells flattened and shortened."""

    def cell(text: str) -> str:
        flat = " ".join(text.split()).replace("|", "\\|")
        return flat if len(flat) <= width else flat[: width - 1] + "…"

    lines = ["| prompt | reference | base | adapter |", "|---|---|---|---|"]
    lines += [f"| {cell(s['prompt'])} | {cell(s['reference'])} | {cell(s['base'])} | {cell(s['adapter'])} |" for s in samples]
    return "\n".join(lines)
