"""Across domains: every adapter on every domain's held-out split, against the base model.

The forgetting matrix answers "did tuning for one domain hurt the others?": cell (adapter a,
eval domain e) is a's eval loss on e minus the base's on e. Negative means better than the base,
positive means the adapter made the base worse at e (forgetting).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assets.models.loading import load_quantized_base, load_tokenizer, pick_compute_dtype
from assets.models.scoring import supervised_loss


@dataclass(frozen=True)
class CrossDomainReport:
    domains: list[str]  # eval domains, sorted
    base_loss: dict[str, float]  # eval domain -> base loss
    loss: dict[str, dict[str, float]]  # adapter domain -> eval domain -> loss

    def delta(self, adapter: str, evaluated: str) -> float:
        return self.loss[adapter][evaluated] - self.base_loss[evaluated]

    def matrix(self) -> dict[str, dict[str, float]]:
        """Adapter -> eval domain -> loss change against the base (the forgetting matrix)."""
        return {a: {e: self.delta(a, e) for e in self.domains} for a in self.loss}

    def worst_forgetting(self) -> tuple[str, str, float] | None:
        """(adapter, other domain, loss change) of the largest change off the diagonal, if any."""
        cells = [(a, e, d) for a, row in self.matrix().items() for e, d in row.items() if a != e]
        return max(cells, key=lambda cell: cell[2], default=None)


def cross_domain_losses(base_dir: Path, adapters: dict[str, Path], eval_sets: dict[str, Any], device: str, batch_size: int = 8) -> CrossDomainReport:
    """Load the 4-bit base once, attach every adapter by name, score each on every eval split."""
    from peft import PeftModel

    tokenizer = load_tokenizer(base_dir)
    base = load_quantized_base(base_dir, pick_compute_dtype("auto", device), device)
    names = sorted(adapters)
    model = PeftModel.from_pretrained(base, adapters[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(adapters[name], adapter_name=name)
    domains = sorted(eval_sets)
    pad = tokenizer.pad_token_id
    with model.disable_adapter():
        base_loss = {d: supervised_loss(model, eval_sets[d], pad, batch_size, device)[0] for d in domains}
    loss = {}
    for name in names:
        model.set_adapter(name)
        loss[name] = {d: supervised_loss(model, eval_sets[d], pad, batch_size, device)[0] for d in domains}
    return CrossDomainReport(domains, base_loss, loss)


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
