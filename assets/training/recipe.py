"""The QLoRA training recipe: setup, train, save. Runs inside or outside Dagster, on 1 or N processes.

The base is loaded in 4-bit NF4 and frozen; LoRA adapters (peft) are the only trainable weights. A
plain PyTorch loop (measured on par with transformers' Trainer here, see benchmarks/) runs over
packed or length-grouped micro-batches (packing.py), with

- the loss of an optimiser step normalised by the step's supervised tokens across all its
  micro-batches and processes, so k micro-batches of n give the gradients of one batch of k x n;
- data order and dropout pure functions of (seed, step), so a resumed or multi-process run follows
  the same path as an uninterrupted single-process one;
- atomic checkpoints every `save_steps` (checkpoint.py) that the next attempt resumes from;
- a stop at the first non-finite loss, before the optimiser touches the weights and with no adapter.

Several processes (`torchrun`, gloo on CPU, nccl on CUDA): micro-batch j of a step runs on process
j % world_size and the gradients are summed; process 0 writes checkpoints and the adapter.
"""

import math
import os
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.models.chat_format import FALLBACK_CHAT_TEMPLATE
from assets.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from assets.settings.training import QLoraConfig
from assets.models.loading import load_quantized_base, load_tokenizer, pick_compute_dtype
from assets.training.packing import choose_layout, pad_share_of, steps_for
from assets.models.batches import collate_rows, supervised_tokens
from assets.models.targets import TargetPlan, model_skeleton, resolve_targets


@dataclass(frozen=True)
class TrainingReport:
    trainable_parameters: int
    total_parameters: int
    final_train_loss: float
    tokens_seen: int  # real (non-padding) input tokens processed in this run, all processes
    tokens_per_second: float
    duration_s: float
    peak_memory_mb: float
    steps: int
    compute_dtype: str
    resumed_from: str | None
    packing: str = "off"
    pad_share: float = 0.0  # share of computed positions that held padding
    world_size: int = 1
    loss_history: list[dict[str, float]] = field(default_factory=list)  # step, loss, learning_rate
    target_modules: list[str] = field(default_factory=list)  # what target_modules resolved to on this model
    target_counts: dict[str, int] = field(default_factory=dict)  # layers adapted per name
    full_precision_layers: list[str] = field(default_factory=list)  # kept out of 4-bit (shapes the kernels cannot run)

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_parameters / self.total_parameters


class NonFiniteLoss(RuntimeError):
    """Training diverged; no adapter is saved from a run that produced NaN or inf."""


class DatasetTooSmall(ValueError):
    """The training split cannot fill one micro-batch."""


def build_model(base_dir: Path, config: QLoraConfig, device: str, plan: TargetPlan | None = None) -> tuple[Any, Any, Any]:
    """(peft model, tokenizer, compute dtype): the 4-bit base with fresh LoRA adapters (seeded) on
    the layers `plan` names (resolved from config.target_modules when not given)."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    dtype = pick_compute_dtype(config.compute_dtype, device)
    tokenizer = load_tokenizer(base_dir)
    plan = plan or resolve_targets(model_skeleton(base_dir), list(config.target_modules))
    model = load_quantized_base(base_dir, dtype, device, config.double_quant)
    model.config.use_cache = False  # a KV cache in training would also switch off packed-sequence masks
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers 5 method that warns of its own rename; nothing to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=plan.targets,
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(config.seed)  # adapter init (LoRA A matrices) is random
    return get_peft_model(model, lora), tokenizer, dtype


def micro_batch_loss(model: Any, batch: dict[str, Any], step_supervised: int, device: str) -> Any:
    """Summed next-token cross-entropy of one micro-batch divided by the whole step's supervised tokens."""
    import torch

    inputs = {k: v.to(device) for k, v in batch.items()}
    n = torch.tensor(step_supervised, dtype=torch.float32, device=device)
    return model(**inputs, num_items_in_batch=n, use_cache=False).loss


def train_qlora(
    base_dir: Path,
    train_dataset: Any,
    adapter_dir: Path,
    checkpoint_dir: Path,
    config: QLoraConfig,
    device: str,
    log: Callable[[str], None] = print,
) -> TrainingReport:
    """Train LoRA adapters on the 4-bit base and save them (PEFT format) with the tokenizer."""
    import torch
    import torch.distributed as dist
    from transformers import get_scheduler

    from assets.training.progress import ProgressLog

    # setup: processes, data layout, model, optimiser, and the checkpoint to resume from
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    # Resolved first: a target name that matches nothing stops here, before any data or weights load.
    plan = resolve_targets(model_skeleton(base_dir), list(config.target_modules))
    ids, labels = train_dataset["input_ids"], train_dataset["labels"]
    lengths = [len(x) for x in ids]
    if len(lengths) < config.batch_size:
        raise DatasetTooSmall(
            f"the training split has {len(lengths)} examples, fewer than one batch of {config.batch_size}: "
            "add data to the domain or lower training.batch_size"
        )
    layout = choose_layout(config.packing, lengths, config.batch_size, config.seed)
    mode = layout.mode
    per_step = config.gradient_accumulation * world  # micro-batches per optimiser step, all processes
    epochs = {0: layout.epoch(lengths, config.seed, 0)}

    def step_batches(step: int) -> list[list[list[int]]]:
        """The micro-batches of optimiser step `step` (0-based): a stream over epochs, cut per step."""
        out = []
        for j in range(step * per_step, (step + 1) * per_step):
            epoch, index = divmod(j, len(epochs[0]))
            out.append(epochs.setdefault(epoch, layout.epoch(lengths, config.seed, epoch))[index])
        return out

    total = steps_for(len(epochs[0]), per_step, config.epochs, config.max_steps)
    model, tokenizer, dtype = build_model(base_dir, config, device, plan)
    trainable, total_params = model.get_nb_trainable_parameters()
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, math.ceil(config.warmup_ratio * total), total)
    start, history, resumed = 0, [], None
    if resume := latest_checkpoint(checkpoint_dir):
        state = load_checkpoint(resume)
        with torch.no_grad():
            for name, p in zip(names, params, strict=True):
                p.copy_(state["adapter"][name])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, history, resumed = int(state["step"]), list(state["history"]), str(resume)
        log(f"resuming from checkpoint {resume} (step {start})")

    # train
    rows = f"rows of {layout.block_len} tokens, {layout.rows_per_batch} per micro-batch" if layout.block_len else f"{layout.rows_per_batch} examples per micro-batch"
    if rank == 0:
        log(f"batches: {mode} ({rows}), padding {pad_share_of(epochs[0], lengths, layout.block_len):.1%} of an epoch's positions; "
            f"{per_step} micro-batches per step on {world} process(es)")
    model.train()
    progress = ProgressLog(log if rank == 0 else (lambda _: None), total, start, config.logging_steps)
    progress.history = history
    tokens = computed_pad = 0
    used: list = []
    started = time.perf_counter()
    for step in range(start, total):
        batches = step_batches(step)
        used += batches
        rows = [[[{"input_ids": ids[i], "labels": labels[i]} for i in row] for row in b] for b in batches]
        collated = [collate_rows(r, tokenizer.pad_token_id, layout.block_len) for r in rows]
        step_supervised = sum(supervised_tokens(b) for b in collated)
        step_loss = torch.zeros((), dtype=torch.float64)
        for j in range(rank, per_step, world):
            # Dropout masks depend on (seed, step, micro-batch) only: equal on resume and across world sizes.
            torch.manual_seed(config.seed * 1_000_003 + step * 1_009 + j)
            loss = micro_batch_loss(model, collated[j], max(step_supervised, 1), device)
            loss.backward()
            step_loss += loss.detach().double().cpu()
        if world > 1:
            for p in params:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            dist.all_reduce(step_loss, op=dist.ReduceOp.SUM)
        if not math.isfinite(step_loss.item()):
            raise NonFiniteLoss(f"training loss became {step_loss.item()} at step {step + 1}/{total}; stopped, no adapter saved")
        torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens += sum(lengths[i] for b in batches for row in b for i in row)
        progress.step(step + 1, float(step_loss), float(scheduler.get_last_lr()[0]), tokens)
        if (step + 1) % config.save_steps == 0 and step + 1 < total:
            if rank == 0:
                adapter = {n: p.detach().cpu().clone() for n, p in zip(names, params, strict=True)}
                save_checkpoint(checkpoint_dir, step + 1, {
                    "step": step + 1, "adapter": adapter, "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "history": progress.history,
                })
            if world > 1:
                dist.barrier()
    duration = time.perf_counter() - started

    # save
    if rank == 0:
        model.save_pretrained(adapter_dir)
        # A base without a chat template was trained on the fallback layout: ship that layout with
        # the adapter (and so the merged model), so serving renders prompts as training did.
        tokenizer.chat_template = tokenizer.chat_template or FALLBACK_CHAT_TEMPLATE
        tokenizer.save_pretrained(adapter_dir)
    if world > 1:
        dist.barrier()
    final_loss = progress.history[-1]["loss"] if progress.history else float("nan")
    return TrainingReport(
        trainable_parameters=int(trainable),
        total_parameters=int(total_params),
        final_train_loss=final_loss,
        tokens_seen=tokens,
        tokens_per_second=tokens / max(duration, 1e-9),
        duration_s=duration,
        peak_memory_mb=_peak_memory_mb(device),
        steps=total,
        compute_dtype=str(dtype).removeprefix("torch."),
        resumed_from=resumed,
        packing=mode,
        pad_share=pad_share_of(used, lengths, layout.block_len),
        world_size=world,
        loss_history=progress.history,
        target_modules=plan.targets,
        target_counts=plan.counts,
        full_precision_layers=plan.full_precision,
    )


def _peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
