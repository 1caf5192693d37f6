"""Task scores of generated answers against reference answers, and bits per byte.

Exact match and ROUGE-L compare what the model *says* with the reference answer, which loss does not:
a lower loss can still generate the wrong answer. Both are in [0, 1], higher is better, averaged over
the scored examples.

- Exact match: 1 when prediction and reference are equal after whitespace normalisation (runs of
  whitespace become one space, ends stripped), else 0. Case and punctuation count.
- ROUGE-L: the F1 of the longest common subsequence of words, computed by Google's `rouge-score`
  package (`RougeScorer(["rougeL"])`). Its default tokenizer keeps only ASCII letters and digits, which
  scores every non-Latin answer 0; words here are Unicode letter/digit runs, lowercased, which is the
  same tokenization on ASCII text.
- Bits per byte: total next-token negative log-likelihood over the supervised tokens (nats), divided by
  ln 2 and by the number of UTF-8 bytes those tokens decode to (special tokens such as end-of-turn count
  0 bytes; their NLL counts). Unlike loss per token it does not depend on how many tokens a tokenizer
  spends per byte, so models with different tokenizers compare.

Pure: no dagster, no torch.
"""

import math
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

# Unicode letter or digit runs: `[^\W_]` is \w without the underscore, as rouge-score's [a-z0-9].
_WORD = re.compile(r"[^\W_]+")


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when both are equal after whitespace normalisation, else 0.0."""
    return float(normalize_whitespace(prediction) == normalize_whitespace(reference))


class _UnicodeWords:
    """The tokenizer rouge-score calls (`tokenize(text) -> list[str]`)."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())


@lru_cache(maxsize=1)
def _scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_UnicodeWords())


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 of the prediction against the reference (rouge-score), in [0, 1]."""
    return float(_scorer().score(reference, prediction)["rougeL"].fmeasure)


def bits_per_byte(nll_nats: float, n_bytes: int) -> float:
    """Total NLL in nats over `n_bytes` UTF-8 bytes of text, in bits per byte."""
    if n_bytes <= 0:
        raise ValueError("bits per byte needs at least one byte of scored text")
    return nll_nats / math.log(2) / n_bytes


@dataclass(frozen=True)
class TaskScores:
    """Exact match and ROUGE-L of base and adapter over the same prompts; `skipped` says why none
    were scored (then every mean is None)."""

    samples: list[dict[str, str]] = field(default_factory=list)  # prompt, reference, base, adapter
    skipped: str | None = None
    not_scored: dict[str, int] = field(default_factory=dict)  # reason -> eval examples left out

    def _mean(self, metric: Any, side: str) -> float | None:
        if not self.samples:
            return None
        return sum(metric(s[side], s["reference"]) for s in self.samples) / len(self.samples)

    def numbers(self) -> dict[str, float | int]:
        """The metadata numbers; only `task_examples` (0) when nothing was scored."""
        return dict(self._numbers)

    @cached_property
    def _numbers(self) -> dict[str, float | int]:
        # Computed once: the asset reads them three times, and ROUGE-L is a word-level LCS in Python.
        if not self.samples:
            return {"task_examples": 0}
        return {
            "task_examples": len(self.samples),
            **{f"task_exact_match_{side}": self._mean(exact_match, side) for side in ("base", "adapter")},
            **{f"task_rouge_l_{side}": self._mean(rouge_l, side) for side in ("base", "adapter")},
        }

    def describe(self) -> str:
        if not self.samples:
            return f"skipped: {self.skipped}"
        left_out = "; ".join(f"{n} {reason}" for reason, n in self.not_scored.items() if n)
        return f"{len(self.samples)} held-out prompts generated greedily and scored" + (f" ({left_out})" if left_out else "")


def task_gate(scores: TaskScores, metric: str, margin: float) -> tuple[bool, str]:
    """The merge gate on a task metric: adapter >= base + margin; fails when nothing was scored."""
    key = {"rouge_l": "task_rouge_l", "exact_match": "task_exact_match"}[metric]
    numbers = scores.numbers()
    if not scores.samples:
        return False, f"gate_metric {metric}: no task score to decide on ({scores.skipped})"
    base, adapter = numbers[f"{key}_base"], numbers[f"{key}_adapter"]
    passed = adapter >= base + margin
    return passed, f"{metric} {base:.4f} -> {adapter:.4f} (required >= base + {margin})"
