"""Adaptive decoupled entropy minimisation, AdaDEM (dem_spec.md 1.6), and its ablations.

Per sample n with p = softmax(z), pseudo-label k = argmax p and anchor a = MEC[k] (a constant):

    L_n = -(1 / delta_n) * sum_i (p_i - a_i) z_i,
    dL/dz_i = [-p_i (z_i + T + 1) + a_i] / delta_n,       delta_n = || p * (z + T + 1) ||_1 (detached)

i.e. the CADF reward rescaled to unit L1 norm, with EM's GMC penalty p replaced by the Marginal Entropy
Calibrator (MEC): a (C, C) bank whose row k is a running mean prediction of the samples predicted as k.

Choices where the paper is ambiguous (dem_spec.md section 6), all documented and configurable:
* delta is treated as a constant (detached), as the pseudo-code's no-grad block suggests (#1).
* the bank is updated with the current batch *before* the loss is formed (pseudo-code order).
* the batch reduction is left to the caller (objectives return per-sample losses).
* ``anchor_weight`` is the optional alpha on the MEC anchor of App. D.7 (default 1, i.e. the paper's AdaDEM).

Note on the L1 norm: sum_i p_i (z_i + T + 1) = 1, so delta >= 1 and the division is always safe.
"""
from __future__ import annotations

import torch
from torch import nn

from .._validate import check_logits, check_positive, check_range, compute_dtype

__all__ = ["ADADEM_VARIANTS", "AdaDEM", "cadf_reward_norm", "update_mec_bank"]

ADADEM_VARIANTS = ("adadem", "norm", "mec", "v")
_NORMS = {"l1": 1.0, "l2": 2.0, "linf": float("inf")}


def cadf_reward_norm(z: torch.Tensor, p: torch.Tensor, *, norm: str = "l1", from_entropy: bool = False
                     ) -> torch.Tensor:
    """Per-sample norm of the CADF reward p * (z + T + 1), or of the entropy gradient p * (z + T) when
    ``from_entropy`` (AdaDEM-V). Shape (N, 1), no gradient."""
    with torch.no_grad():
        t = -(p * z).sum(1, keepdim=True)
        return _row_norm(p * (z + t) if from_entropy else p * (z + t + 1.0), norm)


def _row_norm(g: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-row norm (N, 1), floored: ||grad H|| vanishes at one-hot and uniform predictions (AdaDEM-V)."""
    d = torch.linalg.vector_norm(g, ord=_NORMS[norm], dim=1, keepdim=True)
    return d.clamp_min(torch.finfo(d.dtype).tiny ** 0.5)


def update_mec_bank(bank: torch.Tensor, probs: torch.Tensor, pseudo_labels: torch.Tensor, pi: float) -> None:
    """In place: bank[k] <- (1 - pi) bank[k] + pi * mean(probs[pseudo_labels == k]) for every class k present.

    Each sample adds its share pi * (p_n - bank[k_n]) / N_k to its row, which sums to exactly the update
    above; rows of absent classes receive nothing. One gather and one ``index_add_``: O(N C) work, no
    Python loop over classes, no O(C^2) pass over the bank and no host synchronisation (C = 1000 is cheap).
    """
    with torch.no_grad():
        probs = probs.to(bank.dtype)
        counts = torch.bincount(pseudo_labels, minlength=bank.shape[0]).to(bank.dtype)
        share = (pi / counts[pseudo_labels]).unsqueeze(1)
        bank.index_add_(0, pseudo_labels, share * (probs - bank[pseudo_labels]))


def _flatten_dense(logits: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(N, C, *) logits -> (N * prod(*), C) rows, and a (N, *) mask -> (N * prod(*),)."""
    if mask is not None:
        want = (logits.shape[0], *logits.shape[2:])
        if tuple(mask.shape) != want or mask.dtype != torch.bool:
            raise ValueError(f"the pixel mask must be a bool tensor of shape {want}, got {mask.dtype} "
                             f"{tuple(mask.shape)}")
        mask = mask.reshape(-1)
    return logits.movedim(1, -1).reshape(-1, logits.shape[1]), mask


class _SurrogateLoss(torch.autograd.Function):
    """L = -(1/delta) sum_i (p_i - a_i) z_i with p, a, delta constants in the weights and p carrying the
    softmax gradient; its gradient is the closed form [a_i - p_i (z_i + T + 1)] / delta (dem_spec.md 1.6).

    Written by hand rather than left to autograd because every factor is already computed for the bank
    update and delta: the backward pass is then a single multiply, which keeps AdaDEM close to EM's cost
    at C = 1000 (autograd would rebuild the softmax Jacobian-vector product through six extra nodes).
    """

    @staticmethod
    def forward(ctx, z, p, anchor, reward, inv_delta):
        ctx.save_for_backward((anchor - reward) * inv_delta)
        return -((p - anchor) * z).sum(1) * inv_delta.squeeze(1)

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad_out.unsqueeze(1) * grad, None, None, None, None


class AdaDEM(nn.Module):
    """Per-sample AdaDEM loss with its MEC bank; ``loss = AdaDEM(num_classes)(logits).mean()``.

    Args:
        num_classes: C; the bank has shape (C, C) and logits must have C columns.
        pi: weight of the new batch mean in the bank update (paper: 0.1), in (0, 1].
        variant: ``"adadem"`` (normalised CADF + MEC), ``"norm"`` (EM gradient / delta, AdaDEM-Norm),
            ``"mec"`` (CADF + MEC without normalisation, AdaDEM-MEC), ``"v"`` (delta from the entropy gradient,
            AdaDEM-V; the paper shows it collapses at larger learning rates).
        norm: ``"l1"`` (paper), ``"l2"`` or ``"linf"`` (Fig. 11 ablation).
        anchor_weight: optional alpha scaling the MEC anchor (App. D.7); 1 is the paper's AdaDEM.

    The loss *value* is a surrogate (only its gradient is meaningful); use ``entropy`` for thresholds/logs.
    """

    def __init__(self, num_classes: int, pi: float = 0.1, variant: str = "adadem", *, norm: str = "l1",
                 anchor_weight: float = 1.0) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if variant not in ADADEM_VARIANTS:
            raise ValueError(f"unknown AdaDEM variant {variant!r}; choose one of {ADADEM_VARIANTS}")
        if norm not in _NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {tuple(_NORMS)}")
        self.num_classes = num_classes
        self.pi = check_range(pi, "pi", 0.0, 1.0)
        self.variant = variant
        self.norm = norm
        self.anchor_weight = check_positive(anchor_weight, "anchor_weight", allow_zero=True)
        self.register_buffer("bank", torch.full((num_classes, num_classes), 1.0 / num_classes))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))

    @property
    def name(self) -> str:
        return "adadem" if self.variant == "adadem" else f"adadem_{self.variant}"

    def reset(self) -> None:
        """Re-initialise the MEC bank to 1/C (the paper's ``reset`` flag)."""
        with torch.no_grad():
            self.bank.fill_(1.0 / self.num_classes)
            self.num_updates.zero_()

    def update_bank(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """Update the MEC bank with the (optionally masked) samples of ``logits``; no loss is formed."""
        check_logits(logits, num_classes=self.num_classes, dense=True)
        if logits.dim() > 2:
            logits, mask = _flatten_dense(logits, mask)
        with torch.no_grad():
            p = torch.softmax(logits.to(compute_dtype(logits.dtype)), dim=1)
            self._update(p, p.argmax(1), mask)

    def _update(self, p: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None) -> None:
        if mask is not None:
            if mask.shape != k.shape or mask.dtype != torch.bool:
                raise ValueError(f"bank mask must be a bool tensor of shape {tuple(k.shape)}, "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
            p, k = p[mask], k[mask]
        if k.numel() == 0:
            return
        # out of place, so that an adapter can roll a failed batch back by keeping a reference to the old bank;
        # kept in the wider of its own and the logits' compute dtype (float64 logits get a float64 bank)
        bank = self.bank.to(torch.promote_types(self.bank.dtype, p.dtype), copy=True)
        update_mec_bank(bank, p, k, self.pi)
        self.bank = bank
        self.num_updates = self.num_updates + 1

    def forward(self, logits: torch.Tensor, *, update: bool = True, bank_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Per-sample loss (N,). ``update=False`` leaves the bank as is (e.g. SAR's second SAM pass);
        ``bank_mask`` restricts the bank update to the selected samples.

        Dense logits (N, C, *) give per-pixel losses (N, *) and the bank is estimated over pixels: row k is the
        running mean prediction of the pixels predicted as k (those of ``bank_mask`` (N, *) only: pass the
        valid pixels there, and reduce the loss over them). The pixels are viewed as one (N*H*W, C) batch, one
        transposed copy of the logits, so memory stays O(N C H W) and there is no loop over classes.
        """
        check_logits(logits, num_classes=self.num_classes, dense=True)
        if logits.dim() > 2:
            flat, mask = _flatten_dense(logits, bank_mask)
            loss = self.forward(flat, update=update, bank_mask=mask)
            return loss.reshape(logits.shape[0], *logits.shape[2:])
        z = logits.to(compute_dtype(logits.dtype))
        with torch.no_grad():
            zd = z.detach()
            p = torch.softmax(zd, dim=1)
            k = p.argmax(1)
            if update and self.variant != "norm":
                self._update(p, k, bank_mask)
            t = -(p * zd).sum(1, keepdim=True)
            reward = p * (zd + t + 1.0)                      # CADF reward, -dT/dz
            if self.variant == "norm":
                anchor = p                                   # EM's own GMC penalty
            else:
                anchor = self.bank.to(z.dtype).index_select(0, k)
                if self.anchor_weight != 1.0:
                    anchor = anchor * self.anchor_weight
            if self.variant == "mec":
                inv_delta = torch.ones_like(t)
            else:  # AdaDEM-V normalises by the entropy gradient p (z + T) = reward - p
                inv_delta = 1.0 / _row_norm(reward - p if self.variant == "v" else reward, self.norm)
        return _SurrogateLoss.apply(z, p, anchor, reward, inv_delta).to(logits.dtype)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, pi={self.pi}, variant={self.variant!r}, norm={self.norm!r}"
