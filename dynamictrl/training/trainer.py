"""The training loop on accelerate: one code path for a laptop CPU, DDP and DeepSpeed (chosen by the launch config).

The loop knows nothing about DynamiCtrl beyond :mod:`.spec` (components, dataset, trainable parameters, and
:class:`~.spec.DynamiCtrlSpec`'s ``prepare`` and ``loss``). Determinism: every random draw of a micro-batch comes from a generator seeded by (seed, micro-batch
index, rank), and the data order is a pure function of (seed, epoch), so "N steps" and "N/2 steps, resume, N/2
steps" give the same weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..data.dataset import ResumableSampler, collate
from ..devices import torch_dtype
from ..errors import UserError
from .checkpointing import (
    TRAINER_STATE,
    checkpoint_dir,
    full_state_dict,
    list_checkpoints,
    prune_checkpoints,
    publish_checkpoint,
    read_trainer_state,
    register_hooks,
    resolve_resume,
    save_transformer,
)
from .config import Config, save_config, to_yaml
from .engines import accelerator_kwargs_handlers, enable_fsdp_on_cpu_ranks, relink_lr_scheduler
from .outputs import save_tiny_base, write_checkpoint_info, write_final_info
from .spec import (
    DynamiCtrlSpec,
    build_dataset,
    load_components,
    resolve_reference_scaling,
    select_trainable,
    step_generator,
)

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Raised after ``train.max_nonfinite_steps`` non-finite losses in a row."""


class Trainer:
    """Build everything from a :class:`Config` and train: ``Trainer(cfg).train()``."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.output_dir = Path(cfg.train.output_dir)
        self.base_dir = self.output_dir / "base"  # the frozen components a tiny run builds (a pipeline folder)
        self.global_step = 0
        self.micro_batches = 0
        self.skipped_clips = 0
        self.seen_clips = 0
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ setup

    def _accelerator(self):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration

        cfg = self.cfg
        accelerator = Accelerator(
            cpu=_cpu_only(),
            kwargs_handlers=accelerator_kwargs_handlers(),
            gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
            mixed_precision=cfg.train.mixed_precision,
            log_with=list(cfg.logging.report_to) or None,
            project_config=ProjectConfiguration(
                project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")
            ),
        )
        enable_fsdp_on_cpu_ranks(accelerator)
        plugin = accelerator.state.deepspeed_plugin
        if plugin is not None:
            # the data loader is not prepared, so tell DeepSpeed the micro-batch size; accumulation and clipping come
            # from the training config (accelerate would otherwise keep the launch config's values silently)
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.train.batch_size
            plugin.deepspeed_config["gradient_accumulation_steps"] = cfg.train.gradient_accumulation_steps
            plugin.deepspeed_config["gradient_clipping"] = cfg.optimizer.max_grad_norm
        return accelerator

    def setup(self) -> None:
        cfg = self.cfg
        accelerator = self.accelerator = self._accelerator()
        self.device = accelerator.device
        precision = accelerator.mixed_precision  # no | fp16 | bf16 (the config allows no others)
        self.weight_dtype = torch_dtype("float32" if precision == "no" else precision)
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.output_dir / "config.yaml")
            logger.info("resolved config:\n%s", to_yaml(cfg))
        if cfg.train.cpu_threads and self.device.type == "cpu":
            torch.set_num_threads(cfg.train.cpu_threads)
        if cfg.train.allow_tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True

        from accelerate.utils import set_seed

        set_seed(cfg.train.seed)
        self.dataset = build_dataset(cfg)
        cached = bool(cfg.data.latents)
        need_text = cfg.model.use_text and (
            not (cached and self.dataset.meta.get("has_prompt_embeds")) or cfg.validation.every_steps > 0
        )
        need_vae = not cached or cfg.validation.every_steps > 0
        tiny = cfg.model.source == "tiny"
        # a tiny run builds its own frozen components: keep them all until they are saved as the run's base
        components = load_components(cfg.model, need_vae=need_vae or tiny, need_text=need_text or tiny)
        resume = resolve_resume(cfg.checkpoint.resume_from, self.output_dir)
        if resume is not None:
            check_resume_layout(read_trainer_state(resume), resume, cfg, accelerator.num_processes)
        if tiny:
            if accelerator.is_main_process and (resume is None or not (self.base_dir / "model_index.json").is_file()):
                save_tiny_base(components, self.base_dir, resolve_reference_scaling(cfg.model, components.vae))
            components.vae = components.vae if need_vae else None
            if not need_text:
                components.text_encoder = components.tokenizer = None
        for frozen in (components.vae, components.text_encoder):
            if frozen is not None:
                frozen.requires_grad_(False).eval().to(self.device, dtype=self.weight_dtype)
        empty = self.dataset.empty_prompt_embeds() if cached else None
        self.spec = DynamiCtrlSpec(cfg, components, empty_prompt_embeds=empty)
        if not cached:
            self.spec.check_data()

        transformer = components.transformer
        params = select_trainable(transformer, cfg.train)
        if cfg.train.gradient_checkpointing:
            transformer.enable_gradient_checkpointing()
        transformer.train()

        opt = cfg.optimizer
        optimizer = torch.optim.AdamW(
            params, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay, eps=opt.eps
        )
        from diffusers.optimization import get_scheduler

        # accelerate steps a prepared scheduler once per process per optimizer step
        lr_scheduler = get_scheduler(
            opt.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=opt.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=cfg.train.max_steps * accelerator.num_processes,
            num_cycles=opt.lr_num_cycles,
        )
        register_hooks(accelerator, type(transformer), lora=cfg.train.trainable == "lora", ema=cfg.train.ema.enabled)
        self.transformer, self.optimizer, self.lr_scheduler = accelerator.prepare(transformer, optimizer, lr_scheduler)
        # FSDP2 replaces the parameters with sharded ones: take them from the prepared model
        self.params = [p for p in self.transformer.parameters() if p.requires_grad]

        self.ema = None
        if cfg.train.ema.enabled:
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(params, decay=cfg.train.ema.decay)
            self.ema.to(self.device)
            accelerator.register_for_checkpointing(self.ema)

        if resume is not None:
            accelerator.load_state(str(resume))
            relink_lr_scheduler(self.transformer, self.lr_scheduler)  # ZeRO-Offload: else the LR freezes
            state = read_trainer_state(resume)
            self.global_step = state["global_step"]
            self.micro_batches = state["micro_batches"]
            self.skipped_clips = state.get("skipped_clips", 0)
            self.seen_clips = state.get("seen_clips", 0)
            self.nonfinite_total = state.get("nonfinite_steps", 0)
            self.nonfinite_in_a_row = state.get("nonfinite_in_a_row", 0)
            logger.info("resumed from %s at step %d", resume, self.global_step)
        elif cfg.checkpoint.resume_from == "latest":
            logger.info("resume_from=latest: no checkpoint in %s yet, starting fresh", checkpoint_dir(self.output_dir))

        self.sampler = ResumableSampler(
            len(self.dataset),
            cfg.train.batch_size,
            seed=cfg.train.seed,
            rank=accelerator.process_index,
            world_size=accelerator.num_processes,
            start_batch=self.micro_batches,
        )
        self.loader = DataLoader(
            self.dataset,
            batch_size=cfg.train.batch_size,
            sampler=self.sampler,
            collate_fn=collate,
            num_workers=cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=cfg.data.num_workers > 0,
        )
        if cfg.logging.report_to:
            config = json.loads(json.dumps(_flat(cfg), default=str))
            accelerator.init_trackers(cfg.logging.project, config=config)

    # ------------------------------------------------------------------ steps

    def _on_any_rank(self, flag: bool) -> bool:
        """``flag`` OR-ed over all processes (every rank must take the same skip decision)."""
        if self.accelerator.num_processes == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.accelerator.reduce(value, reduction="sum").item() > 0)

    def _grads_finite(self) -> bool:
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return True
        norm = torch.nn.utils.get_total_norm(grads)
        if hasattr(norm, "full_tensor"):  # FSDP2: a norm over sharded DTensors, partial on each rank
            norm = norm.full_tensor()
        return bool(torch.isfinite(norm))

    def _optimizer_step(self, bad_loss: bool) -> tuple[bool, float | None]:
        """At the end of an accumulation window: step unless a loss or the accumulated gradient is non-finite.

        Returns (applied, grad norm). A skipped step leaves weights, optimizer state and LR schedule untouched. A
        non-finite loss was back-propagated too, so its NaN reaches the accumulated gradient: DeepSpeed (which steps
        inside ``backward``) then skips the step by its own check of the gradient norm; GradScaler (fp16) skips and
        lowers its scale.
        """
        accelerator, max_norm = self.accelerator, self.cfg.optimizer.max_grad_norm
        if accelerator.state.deepspeed_plugin is not None:
            applied = self.transformer.was_step_applied()
            return applied, (self.transformer.get_global_grad_norm() if applied else None)
        bad = self._on_any_rank(bad_loss or not self._grads_finite())
        grad_norm, applied = None, False
        if not bad or accelerator.scaler is not None:
            if not bad and max_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(self.params, max_norm)
            self.optimizer.step()
            applied = not bad and not self.optimizer.step_was_skipped
        self.optimizer.zero_grad(set_to_none=True)
        return applied, grad_norm

    def train_step(self, data_iter) -> dict[str, float]:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns its logs.

        A non-finite loss or gradient on any micro-batch of the window skips the whole step (weights, optimizer
        state, LR schedule and EMA unchanged); ``train.max_nonfinite_steps`` skips in a row stop the run.
        """
        cfg, accelerator = self.cfg, self.accelerator
        losses, bad_loss = [], False
        applied, grad_norm = False, None
        for _ in range(cfg.train.gradient_accumulation_steps):
            batch = next(data_iter)
            self.skipped_clips += batch["skipped"]
            self.seen_clips += cfg.train.batch_size + batch["skipped"]
            generator = step_generator(cfg.train.seed, self.micro_batches, accelerator.process_index, 0, self.device)
            self.micro_batches += 1
            with accelerator.accumulate(self.transformer):
                inputs = self.spec.prepare(batch, generator, self.device, self.weight_dtype)
                with accelerator.autocast():
                    loss = self.spec.loss(self.transformer, inputs, generator)
                if torch.isfinite(loss.detach()).all():
                    losses.append(loss.detach())
                else:
                    bad_loss = True
                accelerator.backward(loss)  # also when non-finite: DDP/DeepSpeed need every backward of the window
                if accelerator.sync_gradients:
                    applied, grad_norm = self._optimizer_step(bad_loss)
                    if applied:
                        self.lr_scheduler.step()
        skipped_step = not applied
        if skipped_step:
            self.nonfinite_in_a_row += 1
            self.nonfinite_total += 1
            logger.warning(
                "step %d skipped: non-finite loss or gradient (%d in a row, %d in all)",
                self.global_step + 1,
                self.nonfinite_in_a_row,
                self.nonfinite_total,
            )
            if self.nonfinite_in_a_row >= cfg.train.max_nonfinite_steps:
                raise NonFiniteLossError(
                    f"{self.nonfinite_in_a_row} non-finite losses in a row (a NaN/inf loss or gradient skips the step; "
                    f"train.max_nonfinite_steps={cfg.train.max_nonfinite_steps}): lower optimizer.lr or check the data"
                )
        else:
            self.nonfinite_in_a_row = 0
            if self.ema is not None and (self.global_step + 1) % cfg.train.ema.update_every == 0:
                self.ema.step(self.params)
        self.global_step += 1
        loss_value = torch.stack(losses).mean() if losses else torch.tensor(float("nan"), device=self.device)
        loss_value = accelerator.reduce(loss_value, reduction="mean") if accelerator.num_processes > 1 else loss_value
        logs = {"loss": float(loss_value), "lr": float(self.lr_scheduler.get_last_lr()[0])}
        if grad_norm is not None:
            logs["grad_norm"] = float(grad_norm)
        logs["skipped_clips"] = self.skipped_clips
        logs["nonfinite_steps"] = self.nonfinite_total
        return logs

    def _check_bad_data(self) -> None:
        limit = self.cfg.data.max_bad_fraction
        if self.seen_clips >= 10 and self.skipped_clips > limit * self.seen_clips:
            raise RuntimeError(
                f"{self.skipped_clips} of {self.seen_clips} clips read so far were unreadable (more than "
                f"data.max_bad_fraction={limit}); see the warnings above for the files"
            )

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self) -> Path:
        """Save the full training state as ``checkpoints/checkpoint-<step>`` (temporary name, then renamed)."""
        accelerator = self.accelerator
        final = checkpoint_dir(self.output_dir) / f"checkpoint-{self.global_step:07d}"
        tmp = final.with_name(final.name + ".tmp")
        if accelerator.is_main_process and tmp.exists():
            import shutil

            shutil.rmtree(tmp)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()  # every rank has written its part (RNG states, DeepSpeed shards)
        if accelerator.is_main_process:
            state = dict(
                global_step=self.global_step,
                micro_batches=self.micro_batches,
                skipped_clips=self.skipped_clips,
                seen_clips=self.seen_clips,
                world_size=accelerator.num_processes,
                batch_size=self.cfg.train.batch_size,
                gradient_accumulation_steps=self.cfg.train.gradient_accumulation_steps,
                nonfinite_steps=self.nonfinite_total,
                nonfinite_in_a_row=self.nonfinite_in_a_row,
            )
            (tmp / TRAINER_STATE).write_text(json.dumps(state, indent=2))
            save_config(self.cfg, tmp / "config.yaml")
            write_checkpoint_info(self.cfg, tmp, self.base_dir, self.global_step)
            publish_checkpoint(tmp, final)  # flushed, then renamed: a crash leaves the previous latest
            prune_checkpoints(self.output_dir, self.cfg.checkpoint.total_limit)
            logger.info("saved checkpoint %s", final)
        accelerator.wait_for_everyone()
        return final

    def save_final(self) -> Path | None:
        """Write ``output_dir/final/transformer`` (LoRA merged), ``final/transformer_ema`` with EMA, and what
        inference needs besides (a complete pipeline folder for a tiny run, else the recorded base path)."""
        accelerator = self.accelerator
        state = full_state_dict(accelerator, self.transformer)  # gathered under ZeRO-3 / FSDP (collective)
        if not accelerator.is_main_process:
            return None
        out = self.output_dir / "final"
        model = accelerator.unwrap_model(self.transformer)
        if self.cfg.train.trainable == "lora":
            model.fuse_lora()
            model.unload_lora()
        save_transformer(model, out / "transformer", state)
        if self.ema is not None:
            self.ema.store(self.params)
            self.ema.copy_to(self.params)
            save_transformer(model, out / "transformer_ema")
            self.ema.restore(self.params)
        save_config(self.cfg, out / "config.yaml")
        write_final_info(self.cfg, out, self.base_dir, self.global_step)  # + the base components of a tiny run
        return out

    # ------------------------------------------------------------------ loop

    def train(self) -> dict[str, Any]:
        """Run until ``train.max_steps``; returns a summary (steps, losses, timing, world size)."""
        if not hasattr(self, "accelerator"):
            self.setup()
        cfg, accelerator = self.cfg, self.accelerator
        from .validation import run_validation

        progress = tqdm(
            total=cfg.train.max_steps,
            initial=self.global_step,
            desc="train",
            disable=not (cfg.logging.progress_bar and accelerator.is_local_main_process),
        )
        data_iter = iter(self.loader)
        start_step, start_time = self.global_step, time.perf_counter()
        stop = cfg.train.max_steps
        if cfg.train.max_steps_per_run:
            stop = min(stop, start_step + cfg.train.max_steps_per_run)
        while self.global_step < stop:
            logs = self.train_step(data_iter)
            self.history.append(logs)
            self._check_bad_data()
            progress.update(1)
            progress.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.2e}")
            if cfg.logging.report_to and self.global_step % cfg.logging.every_steps == 0:
                accelerator.log(logs, step=self.global_step)
            every = cfg.checkpoint.every_steps
            if every and self.global_step % every == 0:
                self.save_checkpoint()
            if cfg.validation.every_steps and self.global_step % cfg.validation.every_steps == 0:
                run_validation(self)
        progress.close()
        elapsed = time.perf_counter() - start_time
        steps = self.global_step - start_step
        if cfg.checkpoint.every_steps and steps and not (self.global_step % cfg.checkpoint.every_steps == 0):
            self.save_checkpoint()  # the end of the run is always resumable
        if cfg.checkpoint.save_final:
            self.save_final()
        summary = dict(
            global_step=self.global_step,
            steps_this_run=steps,
            seconds=elapsed,
            steps_per_second=steps / elapsed if elapsed > 0 else math.nan,
            losses=[h["loss"] for h in self.history],
            world_size=accelerator.num_processes,
            rank=accelerator.process_index,
            skipped_clips=self.skipped_clips,
            nonfinite_steps=self.nonfinite_total,
            checkpoints=[str(p) for p in list_checkpoints(self.output_dir)],
            weights_checksum=self.weights_checksum(),
        )
        ranks = self.output_dir / "ranks"
        ranks.mkdir(parents=True, exist_ok=True)
        (ranks / f"rank{accelerator.process_index}.json").write_text(json.dumps(summary, indent=2))
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return summary

    def weights_checksum(self) -> float:
        """Sum of all trainable weights in float64: equal on every rank when data-parallel training is in sync."""
        with torch.no_grad():
            return float(sum(p.detach().double().sum().item() for p in self.params))


def check_resume_layout(state: dict[str, Any], resume: Path, cfg: Config, world_size: int) -> None:
    """Refuse to resume with another world size, batch size or accumulation: the data position (micro-batches per
    rank) and the per-rank optimizer/RNG states would no longer mean the same samples."""
    now = dict(
        world_size=world_size,
        batch_size=cfg.train.batch_size,
        gradient_accumulation_steps=cfg.train.gradient_accumulation_steps,
    )
    diff = [f"{key} {state[key]} (now {value})" for key, value in now.items() if key in state and state[key] != value]
    if diff:
        raise UserError(
            f"checkpoint.resume_from: {resume} was trained with {', '.join(diff)}",
            "the same number of processes, train.batch_size and train.gradient_accumulation_steps, "
            "or a new train.output_dir",
        )


def _cpu_only() -> bool:
    """True on a machine without any GPU (or MPS) outside DeepSpeed: then several ``torchrun`` ranks form a gloo
    group (accelerate only does that when told the run is on CPU)."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return False
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def _flat(cfg: Config) -> dict[str, Any]:
    """The config flattened to ``section.key`` scalars (trackers such as TensorBoard's hparams want scalars)."""
    from omegaconf import OmegaConf

    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else key, sub)
        elif isinstance(value, list):
            out[prefix] = ",".join(map(str, value))
        else:
            out[prefix] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk("", OmegaConf.to_container(cfg, resolve=True))
    return out
