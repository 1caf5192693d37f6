"""Across domains: every adapter on every domain's held-out split, against the base model.

The forgetting matrix answers "did tuning for one domain hurt the others?": cell (adapter a,
eval domain e) is a's eval loss on e minus the base's on e. Negative means better than the base,
positive means the adapter made the base worse at e (forgetting).

A cell's loss depends only on the adapter's bytes, the eval split's bytes, the base and the compute
dtype, so each cell is keyed by those (data versions, not paths) and computed at most once:
- the diagonal and the base row come from adapter_evaluation, which scored exactly them already
  (when it saw the same versions);
- every other cell comes from the previous leaderboard's cells when its key is unchanged;
- only what is left is computed, with one 4-bit base loaded once and the adapters that have a cell
  left attached to it by name, made active in turn, and deleted once done with.
With N domains and one domain changed (new data, so new eval split and new adapter), that is its
row and its column: 2(N-1) cells computed, not N^2 + N.
"""

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from assets.models.loading import load_quantized_base, load_tokenizer
from assets.models.scoring import supervised_loss

BASE = "(base)"  # the adapter name of the base row's cells
Source = Literal["evaluation", "cache", "computed"]


@dataclass(frozen=True)
class DomainEval:
    """One evaluated domain as the leaderboard sees it."""

    adapter_dir: Path
    adapter_version: str  # data version of the adapter adapter_evaluation scored
    eval_version: str  # data version of the training_dataset whose eval split is scored
    load_eval: Callable[[], Any]  # the held-out split; called only when a cell on it is computed
    # {"base": loss, "adapter": loss} when adapter_evaluation scored these same versions with the
    # same base and dtype (else empty, and those cells are computed or taken from the cache).
    evaluated: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    adapter: str  # adapter domain, or BASE
    evaluated: str  # eval domain
    key: str  # adapter version | eval version | base version | dtype
    loss: float
    source: Source


def cell_key(adapter_version: str | None, eval_version: str, base_version: str, dtype: str) -> str:
    return "|".join((adapter_version or BASE, eval_version, base_version, dtype))


@dataclass(frozen=True)
class CrossDomainReport:
    domains: list[str]  # eval domains, sorted
    base_loss: dict[str, float]  # eval domain -> base loss
    loss: dict[str, dict[str, float]]  # adapter domain -> eval domain -> loss
    cells: list[Cell] = field(default_factory=list)  # every cell with where its number came from

    def delta(self, adapter: str, evaluated: str) -> float:
        return self.loss[adapter][evaluated] - self.base_loss[evaluated]

    def matrix(self) -> dict[str, dict[str, float]]:
        """Adapter -> eval domain -> loss change against the base (the forgetting matrix)."""
        return {a: {e: self.delta(a, e) for e in self.domains} for a in self.loss}

    def worst_forgetting(self) -> tuple[str, str, float] | None:
        """(adapter, other domain, loss change) of the largest change off the diagonal, if any."""
        cells = [(a, e, d) for a, row in self.matrix().items() for e, d in row.items() if a != e]
        return max(cells, key=lambda cell: cell[2], default=None)

    def sources(self) -> dict[str, int]:
        """How many cells came from adapter_evaluation, from the previous leaderboard, or were computed."""
        counts = Counter(cell.source for cell in self.cells)
        return {source: counts.get(source, 0) for source in ("evaluation", "cache", "computed")}


def plan_cells(domains: dict[str, DomainEval], base_version: str, dtype: str, cache: dict[str, float]) -> tuple[list[Cell], list[tuple[str, str, str]]]:
    """Cells known without a forward pass (from the evaluations or the cache), and the
    (adapter or BASE, eval domain, key) of those left to compute. Base row first, then adapters, sorted."""
    known, todo = [], []
    names = sorted(domains)
    for adapter in [BASE, *names]:
        for evaluated in names:
            version = None if adapter == BASE else domains[adapter].adapter_version
            key = cell_key(version, domains[evaluated].eval_version, base_version, dtype)
            own = domains[evaluated].evaluated.get("base") if adapter == BASE else (
                domains[adapter].evaluated.get("adapter") if adapter == evaluated else None)
            if own is not None:
                known.append(Cell(adapter, evaluated, key, own, "evaluation"))
            elif key in cache:
                known.append(Cell(adapter, evaluated, key, cache[key], "cache"))
            else:
                todo.append((adapter, evaluated, key))
    return known, todo


def compute_cells(base_dir: Path, domains: dict[str, DomainEval], todo: list[tuple[str, str, str]], compute_dtype: Any, device: str,
                  batch_size: int = 8) -> list[Cell]:
    """Score the cells in `todo` on one 4-bit base: the base row with adapters off, then each adapter
    with a cell left, active in turn on the eval splits it needs, deleted once the next is active."""
    if not todo:
        return []
    from peft import PeftModel

    tokenizer = load_tokenizer(base_dir)
    model = load_quantized_base(base_dir, compute_dtype, device)
    splits: dict[str, Any] = {}

    def score(evaluated: str) -> float:
        if evaluated not in splits:
            splits[evaluated] = domains[evaluated].load_eval()
        return supervised_loss(model, splits[evaluated], tokenizer.pad_token_id, batch_size, device)[0]

    # Every adapter with a cell left is attached before the first forward pass, and the base row is
    # scored with them switched off, as adapter_evaluation does: on CPU, LoRA layers injected into a
    # 4-bit base that already ran a forward pass score ~1e-4 nats differently (bitsandbytes' CPU path).
    adapters = list(dict.fromkeys(a for a, _, _ in todo if a != BASE)) or [sorted(domains)[0]]
    model = PeftModel.from_pretrained(model, str(domains[adapters[0]].adapter_dir), adapter_name=adapters[0])
    for adapter in adapters[1:]:
        model.load_adapter(str(domains[adapter].adapter_dir), adapter_name=adapter)
    with model.disable_adapter():
        cells = [Cell(a, e, key, score(e), "computed") for a, e, key in todo if a == BASE]
    for at, adapter in enumerate(adapters):
        model.set_adapter(adapter)
        cells += [Cell(a, e, key, score(e), "computed") for a, e, key in todo if a == adapter]
        if at > 0:
            model.delete_adapter(adapters[at - 1])  # memory shrinks as the adapters are done with
    return cells


def cross_domain_losses(base_dir: Path, base_version: str, domains: dict[str, DomainEval], cache: dict[str, float], compute_dtype: Any,
                        device: str) -> CrossDomainReport:
    """Every (adapter or base, eval domain) cell: reused where its key says nothing changed, else computed."""
    dtype = str(compute_dtype).removeprefix("torch.")
    known, todo = plan_cells(domains, base_version, dtype, cache)
    cells = known + compute_cells(base_dir, domains, todo, compute_dtype, device)
    names = sorted(domains)
    value = {(c.adapter, c.evaluated): c.loss for c in cells}
    return CrossDomainReport(
        domains=names,
        base_loss={e: value[(BASE, e)] for e in names},
        loss={a: {e: value[(a, e)] for e in names} for a in names},
        cells=sorted(cells, key=lambda c: (c.adapter != BASE, c.adapter, c.evaluated)),
    )


def cells_table(report: CrossDomainReport) -> list[dict[str, Any]]:
    """The cells as rows for cells.json: the next leaderboard's cache."""
    return [{"adapter": c.adapter, "eval": c.evaluated, "key": c.key, "loss": c.loss, "source": c.source} for c in report.cells]


def cache_from(rows: list[dict[str, Any]]) -> dict[str, float]:
    """cells.json rows -> {key: loss}."""
    return {row["key"]: float(row["loss"]) for row in rows}


def forgetting_markdown(report: CrossDomainReport) -> str:
    """Rows: adapters; columns: eval domains; cells: loss change against the base (nats/token)."""
    header = "| adapter \\ eval on | " + " | ".join(report.domains) + " |"
    lines = [header, "|---|" + "---|" * len(report.domains)]
    for adapter in sorted(report.loss):
        cells = []
        for domain in report.domains:
            delta = report.delta(adapter, domain)
            mark = "**" if adapter == domain else ""
            cells.append(f"{mark}{delta:+.3f}{mark}")
        lines.append(f"| {adapter} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Eval loss of the adapter minus the base's on each domain's held-out split; negative is better, "
                 "bold is the adapter's own domain, a positive cell elsewhere is forgetting.")
    return "\n".join(lines)


def leaderboard_markdown(rows: list[dict[str, Any]]) -> str:
    """One row per domain, best improvement first. Task scores and bits per byte show base -> adapter;
    '-' where a domain has none (a text domain, or an evaluation from before they existed)."""
    lines = ["| domain | eval loss base | eval loss adapter | improvement | perplexity adapter | bits/byte | ROUGE-L | exact match | gate |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: r["eval_loss_base"] - r["eval_loss_adapter"], reverse=True):
        lines.append(
            f"| {row['domain']} | {row['eval_loss_base']:.4f} | {row['eval_loss_adapter']:.4f} | "
            f"{row['eval_loss_base'] - row['eval_loss_adapter']:+.4f} | {row['perplexity_adapter']:.2f} | "
            f"{_pair(row, 'bits_per_byte')} | {_pair(row, 'task_rouge_l')} | {_pair(row, 'task_exact_match')} | "
            f"{'passed' if row['adapter_beats_base'] else 'failed'}{_gate_on(row)} |"
        )
    return "\n".join(lines)


def _pair(row: dict[str, Any], key: str) -> str:
    base, adapter = row.get(f"{key}_base"), row.get(f"{key}_adapter")
    return "-" if base is None or adapter is None else f"{base:.3f} -> {adapter:.3f}"


def _gate_on(row: dict[str, Any]) -> str:
    metric = row.get("gate_metric", "loss")
    return "" if metric == "loss" else f" (on {metric})"
