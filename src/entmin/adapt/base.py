"""The ``Adapter`` base class: configure -> select parameters -> optimizer -> snapshot, then one update
per batch. Subclasses implement only ``adapt_batch`` (and their own method state).

Everything ``reset()`` restores is captured at construction: model parameters and buffers, optimizer state
(momentum), objective state (the AdaDEM bank), the adapter's random generator and the method state
(EATA's moving average, SAR's EMA, ...). A reset adapter reproduces its first run bit for bit.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._validate import check_images
from ..objectives import AdaDEM, entropy, get_objective
from .configure import (
    has_batchnorm,
    infer_num_classes,
    module_device,
    norm_layers,
    select_parameters,
    use_batch_statistics,
)
from .optim import OptimizerConfig, build_optimizer

__all__ = ["PRECISIONS", "Adapter", "OptimizerConfig", "build_optimizer"]  # the last two from .optim

PRECISIONS = ("fp32", "bf16", "fp16")


class Adapter(nn.Module):
    """Wraps a classifier: ``forward(x)`` returns the logits of the batch and performs the method's update.

    Args:
        model: any classifier ``x -> logits (N, C)`` containing normalisation layers (configured in place).
        objective: ``"em"`` (default), ``"dem"``, ``"adadem"``, ``"adadem_norm"``, ... , an objective module,
            or any callable ``logits -> (N,)``.
        objective_options: keyword options of a named objective (``tau``, ``alpha``, ``pi``, ...).
        num_classes: C; inferred from the model's last ``nn.Linear`` when omitted.
        optimizer: an :class:`OptimizerConfig` (or a dict of its fields).
        steps: updates per batch (the prediction is the logits of the last forward).
        episodic: reset before every batch.
        trainable: which parameters adapt (see :func:`select_parameters`).
        frozen_modules: module-name prefixes never trained; ``"auto"`` = SAR/DeYO's top-layer rule.
        bank_update: ``"all"`` (default) or ``"selected"``: which samples update the AdaDEM MEC bank in hosts
            that filter samples. Default "all": the bank estimates the class-conditional mean prediction of
            the test stream, and filtered subsets are biased toward confident samples (and can be empty).
        seed: seeds the adapter's own generator (DeYO's patch shuffles); restored by ``reset()``.
        precision: ``"fp32"`` (default), ``"bf16"`` or ``"fp16"``: the model's forward passes under autocast;
            logits, objective, selection and weights stay float32. fp16 scales the loss (GradScaler, whose scale
            is part of the state that ``reset()`` and export/import restore; a step whose scaled gradients
            overflow is skipped, as in any AMP loop); it is for CUDA (on a CPU it runs, slowly: use bf16 there),
            and SAR's two-pass step does not support it (use bf16).
        channels_last: run a CNN in channels-last memory format (faster convolutions on many CPUs and GPUs).
        compile: run the model through ``torch.compile`` (the parameters stay the model's own).
    """

    adapts: bool = True       # False for source / BN-adapt (no parameter update)
    two_pass: bool = False    # True for SAR (two forward/backward passes per step)
    batch_stats: bool = True  # False for source: BatchNorm keeps its running statistics
    default_frozen: bool = False

    def __init__(self, model: nn.Module, objective: str | Callable[[torch.Tensor], torch.Tensor] = "em", *,
                 objective_options: dict[str, Any] | None = None, num_classes: int | None = None,
                 optimizer: OptimizerConfig | dict[str, Any] | None = None, steps: int = 1,
                 episodic: bool = False, trainable: str | Callable[..., bool] = "norm",
                 frozen_modules: Sequence[str] | str | None = None, bank_update: str = "all",
                 seed: int = 0, precision: str = "fp32", channels_last: bool = False, compile: bool = False) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        if bank_update not in ("all", "selected"):
            raise ValueError(f"bank_update must be 'all' or 'selected', got {bank_update!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.model = model
        self.precision, self.channels_last = precision, bool(channels_last)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        # not registered as a submodule: the model's parameters and names stay under `model` only
        object.__setattr__(self, "_run_model", torch.compile(model) if compile else model)
        self.steps = steps
        self.episodic = bool(episodic)
        self.bank_update = bank_update
        self.num_classes = num_classes if num_classes is not None else infer_num_classes(model)
        if self.num_classes is None:
            raise ValueError("cannot infer the class count from the model (no nn.Linear); pass num_classes=")
        self.uses_batch_stats = has_batchnorm(model) and self.batch_stats
        self.device = module_device(model)
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

        if isinstance(objective, str):
            self.objective = get_objective(objective, num_classes=self.num_classes, **(objective_options or {}))
        else:
            if objective_options:
                raise ValueError("objective_options only apply to a named objective")
            self.objective = get_objective(objective)
        self.objective.to(self.device)

        self.configure()
        self.params: list[tuple[str, nn.Parameter]] = []
        self.optimizer: torch.optim.Optimizer | None = None
        if self.adapts:
            if not norm_layers(model):
                raise ValueError(f"{type(self).__name__}: the model has no normalisation layer (BatchNorm, "
                                 "LayerNorm, GroupNorm) to adapt; pass trainable='all' or a filter to adapt "
                                 "other parameters")
            if frozen_modules == "auto" or (frozen_modules is None and self.default_frozen):
                from .frozen import default_frozen_modules
                frozen = default_frozen_modules(model)
            elif isinstance(frozen_modules, str):
                frozen = [frozen_modules]
            else:
                frozen = list(frozen_modules or ())
            self.frozen_modules = frozen
            self.params = select_parameters(model, trainable, frozen)
            if precision == "fp16" and self.two_pass:
                raise ValueError(f"{type(self).__name__}: precision fp16 needs a one-pass host (SAR's SAM step "
                                 "takes two gradients per loss scale): use bf16")
            if not self.params:
                raise ValueError(f"{type(self).__name__}: no trainable parameter selected (trainable="
                                 f"{trainable!r}, frozen_modules={frozen})")
            if isinstance(optimizer, dict):
                optimizer = OptimizerConfig(**optimizer)
            self.opt_config = optimizer or OptimizerConfig()
            self.optimizer = build_optimizer([p for _, p in self.params], self.opt_config)
        else:
            model.requires_grad_(False)
        self.scaler = torch.amp.GradScaler(self.device.type) if precision == "fp16" else None
        self._diag: dict[str, Any] = {}
        self._amp: dict[str, Any] = {}   # fp16: the last step's loss scale and whether GradScaler skipped it
        self.init_method_state()
        self._snapshot = self._capture()

    # ----- configuration -------------------------------------------------------------------------------
    def configure(self) -> None:
        """Put the model in adaptation mode: eval mode (no dropout) with batch-statistics BatchNorm."""
        self.model.eval()
        if self.batch_stats:
            use_batch_statistics(self.model)

    def init_method_state(self) -> None:
        """(Re)initialise method-specific state; subclasses override."""

    # ----- snapshot / reset ----------------------------------------------------------------------------
    def _capture(self) -> dict[str, Any]:
        return {
            "model": copy.deepcopy(self.model.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()) if self.optimizer else None,
            "objective": copy.deepcopy(self.objective.state_dict()),
            "generator": self.generator.get_state(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def reset(self) -> None:
        """Restore model, optimizer, objective and method state exactly as at construction."""
        snap = self._snapshot
        self.model.load_state_dict(snap["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(copy.deepcopy(snap["optimizer"]))
            self.optimizer.zero_grad(set_to_none=True)
        self.objective.load_state_dict(snap["objective"])
        self.generator.set_state(snap["generator"])
        if self.scaler is not None:
            self.scaler.load_state_dict(snap["scaler"])
        self.init_method_state()
        self._diag, self._amp = {}, {}

    # ----- export / import of the running state (resumable continual streams) ------------------------
    def method_state(self) -> dict[str, Any]:
        """Method-specific running state as tensors/numbers (subclasses extend)."""
        return {}

    def load_method_state(self, state: dict[str, Any]) -> None:
        pass

    def export_state(self) -> dict[str, Any]:
        """Everything needed to continue adapting exactly where this adapter is now."""
        return {"model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                "objective": self.objective.state_dict(), "generator": self.generator.get_state(),
                "method": self.method_state(),
                "scaler": self.scaler.state_dict() if self.scaler is not None else None}

    def import_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.objective.load_state_dict(state["objective"])
        self.generator.set_state(state["generator"])
        self.load_method_state(state["method"])
        if self.scaler is not None:
            if state.get("scaler") is None:
                raise ValueError(f"{type(self).__name__}: the state has no fp16 loss scale to continue from (it "
                                 "was exported by an fp32/bf16 adapter)")
            self.scaler.load_state_dict(state["scaler"])

    # ----- running -------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the batch ``x`` (float images), after the method's update; works under an outer
        ``torch.no_grad()`` or ``torch.inference_mode()`` (the update enables gradients itself). A batch that
        raises leaves the method state (moving averages, EMA, AdaDEM bank, counters, generator) as it was
        before it and no gradient behind."""
        check_images(x, type(self).__name__)
        if self.uses_batch_stats and x.shape[0] < 2:
            raise ValueError(f"{type(self).__name__}: batch size {x.shape[0]} with a BatchNorm model: test-batch "
                             "statistics need at least 2 samples; use a larger batch or a LayerNorm/GroupNorm "
                             "model (or the 'source' adapter)")
        if self.episodic:
            self.reset()
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        if not self.adapts:
            with torch.no_grad():
                logits = self.net(x)
            self._diag = {"n": x.shape[0], "entropy": entropy(logits).mean()}
            return logits
        saved = self._running_state()
        self._amp = {}
        try:
            with torch.inference_mode(False), torch.enable_grad():
                if x.is_inference():  # made under inference_mode: autograd cannot save it for backward
                    x = x.clone()
                logits = None
                for _ in range(self.steps):
                    logits = self.adapt_batch(x)
        except BaseException:
            self._restore_running_state(saved)
            raise
        assert logits is not None
        return logits

    def _running_state(self) -> tuple:
        """References to the state a batch may change besides the parameters (every change is out of place,
        so no copy is needed): method state, objective buffers, the generator."""
        return (self.method_state(), dict(self.objective.named_buffers()), self.generator.get_state())

    def _restore_running_state(self, saved: tuple) -> None:
        method, buffers, gen = saved
        self.load_method_state(method)
        for name, value in buffers.items():
            module_name, _, buf = name.rpartition(".")
            setattr(self.objective.get_submodule(module_name) if module_name else self.objective, buf, value)
        self.generator.set_state(gen)
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)

    def adapt_batch(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def net(self, x: torch.Tensor) -> torch.Tensor:
        """The model's logits, under autocast when a lower precision is asked for; always float32."""
        if self.precision == "fp32":
            return self._run_model(x)
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(self.device.type, dtype=dtype):
            out = self._run_model(x)
        return out.float()

    # ----- helpers for subclasses ----------------------------------------------------------------------
    def objective_loss(self, logits: torch.Tensor, selected: torch.Tensor | None = None, *,
                       update: bool = True) -> torch.Tensor:
        """Per-sample objective on the whole batch; AdaDEM's bank sees all samples or only ``selected``."""
        if isinstance(self.objective, AdaDEM):
            mask = selected if (self.bank_update == "selected" and selected is not None) else None
            return self.objective(logits, update=update, bank_mask=mask)
        return self.objective(logits)

    def step(self, loss: torch.Tensor) -> None:
        assert self.optimizer is not None
        if self.scaler is not None:  # GradScaler skips a step whose scaled gradients overflow: say so
            scale = self.scaler.get_scale()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self._amp = {"loss_scale": scale, "update_skipped": self.scaler.get_scale() < scale}
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def skip_update(self, logits: torch.Tensor, diag: dict[str, Any]) -> torch.Tensor:
        """End a batch without an update (no sample passed the filters): drop any gradient, record the
        diagnostics, return the batch's logits."""
        assert self.optimizer is not None
        self.optimizer.zero_grad(set_to_none=True)
        self._diag = diag
        return logits.detach()

    @property
    def last_step(self) -> dict[str, float | int | bool]:
        """Diagnostics of the last batch as Python numbers (converted lazily: no device sync per batch); with
        fp16, also the loss scale used and whether the step was skipped for overflowing gradients."""
        out: dict[str, float | int | bool] = {}
        for k, v in self._diag.items():
            out[k] = v.item() if isinstance(v, torch.Tensor) else v
        return {**out, **self._amp}

    def trainable_parameter_names(self) -> list[str]:
        return [n for n, _ in self.params]

    def extra_repr(self) -> str:
        return (f"objective={getattr(self.objective, 'name', type(self.objective).__name__)}, "
                f"steps={self.steps}, episodic={self.episodic}, trainable={len(self.params)} tensors")
