"""The QLoRA training recipe in named parts: setup (processes, data, model and optimiser, resume),
train (optimiser steps, checkpoints), save. Runs inside or outside Dagster, on 1 or N processes.

The base is loaded in 4-bit NF4 and frozen; LoRA adapters (peft) are the only trainable weights. A
plain PyTorch loop (measured on par with transformers' Trainer here, see benchmarks/) runs over
packed or length-grouped micro-batches (packing.py), with

- the loss of an optimiser step normalised by the step's supervised tokens across all its
  micro-batches and processes, so k micro-batches of n give the gradients of one batch of k x n;
- data order and dropout pure functions of (seed, step), so a resumed or multi-process run follows
  the same path as an uninterrupted single-process one;
- atomic checkpoints every `save_steps` (checkpoint.py) that the next attempt resumes from;
- a stop at the first non-finite loss, before the optimiser touches the weights and with no adapter;
- a stop past `max_train_minutes` of wall time (counted from the start of this run), after a checkpoint,
  so one domain cannot hold the accelerator forever and a later run continues where it stopped.

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

from assets.models.batches import collate_rows, supervised_tokens
from assets.models.chat_format import FALLBACK_CHAT_TEMPLATE
from assets.models.loading import load_quantized_base, load_tokenizer, pick_compute_dtype
from assets.models.targets import TargetPlan, model_skeleton, resolve_targets
from assets.settings.training import QLoraConfig
from assets.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from assets.training.packing import StepStream, choose_layout, pad_share_of, steps_for


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


class TrainingStopped(Exception):
    """A deliberate stop: the same inputs and settings would stop the same way, so it is not retried.
    Any other exception (disk full, out of memory, a lost NCCL peer) may pass on a retry, which
    resumes from the last checkpoint (worker.py writes which kind it was for the launcher)."""


class NonFiniteLoss(TrainingStopped, RuntimeError):
    """Training diverged; no adapter is saved from a run that produced NaN or inf."""


class DatasetTooSmall(TrainingStopped, ValueError):
    """The training split cannot fill one micro-batch."""


class TrainingTimeLimit(TrainingStopped):
    """The run trained past `max_train_minutes`; a checkpoint was written first, so a later run resumes."""


def build_model(base_dir: Path, config: QLoraConfig, device: str, plan: TargetPlan | None = None, skeleton: Any = None) -> tuple[Any, Any, Any]:
    """(peft model, tokenizer, compute dtype): the 4-bit base with fresh LoRA adapters (seeded) on
    the layers `plan` names (resolved from config.target_modules when not given); `skeleton`, the
    model's weightless skeleton if the caller built one already."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    dtype = pick_compute_dtype(config.compute_dtype, device)
    tokenizer = load_tokenizer(base_dir)
    skeleton = skeleton if skeleton is not None else model_skeleton(base_dir)
    plan = plan or resolve_targets(skeleton, list(config.target_modules))
    model = load_quantized_base(base_dir, dtype, device, config.double_quant, skeleton)
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


def micro_batch_loss(model: Any, batch: dict[str, Any], step_supervised: int, device: str, dtype: Any = None) -> Any:
    """Summed next-token cross-entropy of one micro-batch divided by the whole step's supervised tokens;
    the forward under autocast to `dtype` when it is 16-bit (compute.py)."""
    import torch

    from assets.training.compute import autocast

    inputs = {k: v.to(device) for k, v in batch.items()}
    n = torch.tensor(step_supervised, dtype=torch.float32, device=device)
    with autocast(device, dtype):
        return model(**inputs, num_items_in_batch=n, use_cache=False).loss


@dataclass(frozen=True)
class Processes:
    world: int  # processes training together (torchrun), 1 alone
    rank: int  # this process; 0 logs, checkpoints and saves
    device: str  # "cuda:<local rank>" under torchrun on GPUs


@dataclass
class Trainee:
    """The model being trained and what updates it."""

    model: Any
    tokenizer: Any
    dtype: Any
    params: list[Any]  # the adapter weights, in a fixed order
    names: list[str]
    optimizer: Any
    scheduler: Any
    compute: dict[str, Any] = field(default_factory=dict)  # what compute.py chose: attention, dropout, casts


@dataclass
class Run:
    """What the training loop did: the place to resume from, and what it measured."""

    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from: str | None = None
    tokens: int = 0
    duration_s: float = 0.0
    used: list = field(default_factory=list)  # the micro-batches trained on (for the pad share)


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
    limit = getattr(config, "max_train_minutes", None)  # wall-clock minutes for this run, model loading included
    deadline = time.monotonic() + 60 * limit if limit else None
    processes = setup_processes(device)
    # Resolved first: a target name that matches nothing stops here, before any data or weights load.
    skeleton = model_skeleton(base_dir)
    plan = resolve_targets(skeleton, list(config.target_modules))
    stream = setup_data(train_dataset, config, processes.world, processes.device, skeleton.config)
    total = steps_for(len(stream.first_epoch), stream.per_step, config.epochs, config.max_steps)
    trainee = setup_model(base_dir, config, processes.device, plan, total, skeleton, max(stream.lengths))
    run = resume(trainee, checkpoint_dir, log)
    train(trainee, train_dataset, stream, run, total, config, processes, checkpoint_dir, log, deadline)
    save(trainee, adapter_dir, processes)
    trainable, total_params = trainee.model.get_nb_trainable_parameters()
    return TrainingReport(
        trainable_parameters=int(trainable),
        total_parameters=int(total_params),
        final_train_loss=run.history[-1]["loss"] if run.history else float("nan"),
        tokens_seen=run.tokens,
        tokens_per_second=run.tokens / max(run.duration_s, 1e-9),
        duration_s=run.duration_s,
        peak_memory_mb=_peak_memory_mb(processes.device),
        steps=total,
        compute_dtype=str(trainee.dtype).removeprefix("torch."),
        resumed_from=run.resumed_from,
        packing=stream.layout.mode,
        pad_share=pad_share_of(run.used, stream.lengths, stream.layout.block_len, stream.layout.widths),
        world_size=processes.world,
        loss_history=run.history,
        target_modules=plan.targets,
        target_counts=plan.counts,
        full_precision_layers=plan.full_precision,
    )


def setup_processes(device: str) -> Processes:
    """This process's place among `torchrun`'s (gloo on CPU, nccl on CUDA), or alone."""
    import torch.distributed as dist

    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    if device == "cuda" and world > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return Processes(world, rank, device)


def setup_data(train_dataset: Any, config: QLoraConfig, world: int, device: str = "cpu", model_config: Any = None) -> StepStream:
    """The layout of the examples into micro-batches (packing.py, rows in as many widths as pay with
    the attention the model trains with on `device`: compute.row_width_classes) and the stream of
    steps over epochs."""
    import pyarrow.compute as pc

    from assets.training.compute import attention_for, row_width_classes

    # Arrow computes the lengths without materialising a million Python lists (14 s at 1M examples);
    # the "arrow" format view honours a select()'s index mapping, which the raw table would not.
    lengths = pc.list_value_length(train_dataset.with_format("arrow")["input_ids"]).to_numpy().tolist()
    if len(lengths) < config.batch_size:
        raise DatasetTooSmall(
            f"the training split has {len(lengths)} examples, fewer than one batch of {config.batch_size}: "
            "add data to the domain or lower training.batch_size"
        )
    widths = row_width_classes(attention_for(device, model_config, max(lengths)))
    layout = choose_layout(config.packing, lengths, config.batch_size, config.seed, widths)
    return StepStream(layout, lengths, config.seed, per_step=config.gradient_accumulation * world)


def setup_model(base_dir: Path, config: QLoraConfig, device: str, plan: TargetPlan, total: int, skeleton: Any = None,
                longest: int = 0) -> Trainee:
    """The adapted 4-bit model set up for training on `device` examples up to `longest` tokens
    (compute.py), AdamW over the adapter weights, and the learning-rate schedule."""
    import torch
    from transformers import get_scheduler

    from assets.training.compute import prepare_for_training

    model, tokenizer, dtype = build_model(base_dir, config, device, plan, skeleton)
    chosen = prepare_for_training(model, dtype, device, longest)
    params = [p for p in model.parameters() if p.requires_grad]
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    # Fused: one kernel for every adapter tensor's update instead of a loop of small ops.
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay, fused=True)
    scheduler = get_scheduler(config.lr_scheduler, optimizer, math.ceil(config.warmup_ratio * total), total)
    return Trainee(model, tokenizer, dtype, params, names, optimizer, scheduler, chosen)


def resume(trainee: Trainee, checkpoint_dir: Path, log: Callable[[str], None]) -> Run:
    """Adapter, optimiser and schedule restored from the last checkpoint, if there is one."""
    import torch

    checkpoint = latest_checkpoint(checkpoint_dir)
    if checkpoint is None:
        return Run()
    state = load_checkpoint(checkpoint)
    with torch.no_grad():
        for name, p in zip(trainee.names, trainee.params, strict=True):
            p.copy_(state["adapter"][name])
    trainee.optimizer.load_state_dict(state["optimizer"])
    trainee.scheduler.load_state_dict(state["scheduler"])
    log(f"resuming from checkpoint {checkpoint} (step {int(state['step'])})")
    return Run(start=int(state["step"]), history=list(state["history"]), resumed_from=str(checkpoint))


def train(trainee: Trainee, dataset: Any, stream: StepStream, run: Run, total: int, config: QLoraConfig,
          processes: Processes, checkpoint_dir: Path, log: Callable[[str], None], deadline: float | None = None) -> None:
    """Optimiser steps from run.start to `total`, with progress lines and checkpoints; past `deadline`
    (time.monotonic()) a checkpoint, then TrainingTimeLimit."""
    from assets.training.progress import ProgressLog

    layout, world, rank = stream.layout, processes.world, processes.rank
    if rank == 0:
        rows = (f"rows of {'/'.join(map(str, layout.widths))} tokens, "
                f"{'/'.join(str(layout.rows_for(w)) for w in layout.widths)} per micro-batch" if layout.block_len
                else f"{layout.rows_per_batch} examples per micro-batch")
        padding = pad_share_of(stream.first_epoch, stream.lengths, layout.block_len, layout.widths)
        log(f"batches: {layout.mode} ({rows}), padding {padding:.1%} "
            f"of an epoch's positions; {stream.per_step} micro-batches per step on {world} process(es)")
        attention = {"loraline_segments": "per-example"}.get(trainee.compute["attention"], trainee.compute["attention"])
        log(f"compute: {str(trainee.dtype).removeprefix('torch.')}, {attention} attention, "
            f"{trainee.compute['sparse_dropout_layers']} adapter dropouts drawn sparsely, "
            f"{trainee.compute['fused_lora_layers']} LoRA updates fused into one matmul, "
            f"{trainee.compute['frozen_weights_in_compute_dtype']} frozen weights kept in the compute dtype")
    ids, labels = dataset["input_ids"], dataset["labels"]
    trainee.model.train()
    progress = ProgressLog(log if rank == 0 else (lambda _: None), total, run.start, config.logging_steps)
    progress.history = run.history
    started = time.perf_counter()
    for step in range(run.start, total):
        batches = stream.step(step)
        run.used += batches
        collated = [collate_rows([[{"input_ids": ids[i], "labels": labels[i]} for i in row] for row in batch],
                                 trainee.tokenizer.pad_token_id, layout.width_of(batch, stream.lengths)) for batch in batches]
        step_loss = optimiser_step(trainee, collated, step, total, config, processes)
        run.tokens += sum(stream.lengths[i] for batch in batches for row in batch for i in row)
        progress.step(step + 1, step_loss, float(trainee.scheduler.get_last_lr()[0]), run.tokens)
        saved = (step + 1) % config.save_steps == 0 and step + 1 < total
        if saved:
            checkpoint(trainee, checkpoint_dir, step + 1, progress.history, processes)
        if deadline is not None and step + 1 < total and past(deadline, processes):
            if not saved:
                checkpoint(trainee, checkpoint_dir, step + 1, progress.history, processes)
            minutes = getattr(config, "max_train_minutes", 0)
            raise TrainingTimeLimit(
                f"training stopped at its time limit (max_train_minutes {minutes:g}) after step {step + 1}/{total}; "
                f"checkpoint of step {step + 1} saved in {checkpoint_dir}. Materialize again to continue from it "
                "(raise training.max_train_minutes for longer runs)")
    run.duration_s = time.perf_counter() - started
    run.history = progress.history


def past(deadline: float, processes: Processes) -> bool:
    """Whether this run is past its deadline; under torchrun process 0's clock decides for all, so
    every process stops after the same step."""
    import torch
    import torch.distributed as dist

    over = time.monotonic() > deadline
    if processes.world > 1:
        flag = torch.tensor([1 if over and processes.rank == 0 else 0], device=processes.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        over = bool(flag.item())
    return over


def optimiser_step(trainee: Trainee, collated: list[dict[str, Any]], step: int, total: int, config: QLoraConfig,
                   processes: Processes) -> float:
    """One optimiser step over its micro-batches (this process takes j % world); returns the step's loss."""
    import torch
    import torch.distributed as dist

    step_supervised = sum(supervised_tokens(batch) for batch in collated)
    step_loss = torch.zeros((), dtype=torch.float64)
    for j in range(processes.rank, len(collated), processes.world):
        # Dropout masks depend on (seed, step, micro-batch) only: equal on resume and across world sizes.
        torch.manual_seed(config.seed * 1_000_003 + step * 1_009 + j)
        loss = micro_batch_loss(trainee.model, collated[j], max(step_supervised, 1), processes.device, trainee.dtype)
        loss.backward()
        step_loss += loss.detach().double().cpu()
    if processes.world > 1:
        for p in trainee.params:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
        # On the process's device: NCCL reduces CUDA tensors only (gloo takes either).
        reduced = step_loss.to(processes.device)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        step_loss = reduced.cpu()
    if not math.isfinite(step_loss.item()):
        raise NonFiniteLoss(f"training loss became {step_loss.item()} at step {step + 1}/{total}; stopped, no adapter saved")
    torch.nn.utils.clip_grad_norm_(trainee.params, config.max_grad_norm)
    trainee.optimizer.step()
    trainee.scheduler.step()
    trainee.optimizer.zero_grad(set_to_none=True)
    return float(step_loss)


def checkpoint(trainee: Trainee, checkpoint_dir: Path, step: int, history: list[dict[str, float]], processes: Processes) -> None:
    """Process 0 writes adapter, optimiser and schedule state atomically; the others wait for it."""
    import torch.distributed as dist

    if processes.rank == 0:
        adapter = {n: p.detach().cpu().clone() for n, p in zip(trainee.names, trainee.params, strict=True)}
        save_checkpoint(checkpoint_dir, step, {
            "step": step, "adapter": adapter, "optimizer": trainee.optimizer.state_dict(),
            "scheduler": trainee.scheduler.state_dict(), "history": history,
        })
    if processes.world > 1:
        dist.barrier()


def save(trainee: Trainee, adapter_dir: Path, processes: Processes) -> None:
    """The adapter in PEFT format and the tokenizer, written by process 0."""
    import torch.distributed as dist

    if processes.rank == 0:
        trainee.model.save_pretrained(adapter_dir)
        # A base without a chat template was trained on the fallback layout: ship that layout with
        # the adapter (and so the merged model), so serving renders prompts as training did.
        trainee.tokenizer.chat_template = trainee.tokenizer.chat_template or FALLBACK_CHAT_TEMPLATE
        trainee.tokenizer.save_pretrained(adapter_dir)
    if processes.world > 1:
        dist.barrier()


def _peak_memory_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
