"""The QLoRA training recipe: setup, train, save. Runs inside or outside Dagster.

The base is loaded in 4-bit NF4 and frozen; LoRA adapters (peft) are the only trainable weights;
transformers' `Trainer` runs the loop (measured on par with a plain PyTorch loop here), batching by
length so little compute goes to padding. Progress goes to a plain `log` callable, so the recipe
never sees a Dagster context.
"""

import math
import resource
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assets.training.collate import pad_batch
from assets.training.config import QLoraConfig
from assets.training.loading import load_quantized_base, load_tokenizer, pick_compute_dtype


@dataclass(frozen=True)
class TrainingReport:
    trainable_parameters: int
    total_parameters: int
    final_train_loss: float
    tokens_seen: int  # non-padding input tokens
    tokens_per_second: float
    duration_s: float
    peak_memory_mb: float
    steps: int
    compute_dtype: str
    resumed_from: str | None
    loss_history: list[dict[str, float]] = field(default_factory=list)  # step, loss, learning_rate

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.trainable_parameters / self.total_parameters


class NonFiniteLoss(RuntimeError):
    """Training diverged; no adapter is saved from a run that produced NaN or inf."""


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
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import PrinterCallback, Trainer, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    from assets.training.progress import ProgressLog

    # setup
    dtype = pick_compute_dtype(config.compute_dtype, device)
    tokenizer = load_tokenizer(base_dir)
    model = load_quantized_base(base_dir, dtype, device, config.double_quant)
    with warnings.catch_warnings():
        # peft 0.21 calls a transformers 5 method that warns of its own rename; nothing to act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(config.seed)  # adapter init (LoRA A matrices) is random
    model = get_peft_model(model, lora)
    trainable, total = model.get_nb_trainable_parameters()

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    resume = get_last_checkpoint(str(checkpoint_dir))
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of total steps in transformers 5
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        logging_steps=config.logging_steps,
        logging_nan_inf_filter=False,  # the filter would hide a diverged loss from the guard below
        save_steps=config.save_steps,
        save_total_limit=2,
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="non_padding",
        use_cpu=device == "cpu",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    progress = ProgressLog(log)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_dataset.select_columns(["input_ids", "labels", "length"]),
        data_collator=lambda features: pad_batch(features, tokenizer.pad_token_id),
        callbacks=[progress],
    )
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; ProgressLog says it better

    # train
    if resume:
        log(f"resuming from checkpoint {resume}")
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    duration = time.perf_counter() - started
    # The last logged loss, or the run's mean when it was shorter than one logging interval.
    final_loss = progress.history[-1]["loss"] if progress.history else float(result.training_loss)
    if not math.isfinite(final_loss):
        raise NonFiniteLoss(f"training loss became {final_loss}; no adapter saved")

    # save
    model.save_pretrained(adapter_dir)
    tokenizer.save_pretrained(adapter_dir)
    tokens = int(trainer.state.num_input_tokens_seen)
    return TrainingReport(
        trainable_parameters=int(trainable),
        total_parameters=int(total),
        final_train_loss=final_loss,
        tokens_seen=tokens,
        tokens_per_second=tokens / max(duration, 1e-9),
        duration_s=duration,
        peak_memory_mb=_peak_memory_mb(device),
        steps=int(trainer.state.global_step),
        compute_dtype=str(dtype).removeprefix("torch."),
        resumed_from=resume,
        loss_history=progress.history,
    )


def _peak_memory_mb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
