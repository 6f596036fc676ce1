"""NaN and infinity in training: skip the steps that make them, stop a run that keeps
making them, and never save or export weights that hold them.

A step is *non-finite* when its loss (the weighted total or any component) or, when
clipping computes it, its gradient norm is NaN or infinite. Such a step updates nothing:
the weights and the optimizer's moments and step count stay as they were (as the fp16
GradScaler skips a step that overflowed). :attr:`TrainingConfig.max_nonfinite_steps
<textdistill.config.TrainingConfig.max_nonfinite_steps>` of them in a row raise
:class:`~textdistill.errors.NonFiniteError`, naming the loss and the step.

Where the check runs, and why (:meth:`NonFiniteGuard.for_run` picks):

* **On a GPU** (``on_device``), reading a flag on the host every step would stall the
  host until the device catches up, once per step. The flag stays on the device instead:
  the fused AdamW takes it as ``found_inf`` (the GradScaler's own skip) and leaves the
  update undone, and the counters are kept by tensor arithmetic. The host reads them when
  it syncs anyway: at a log line, an evaluation or a checkpoint. The costs: the run stops
  at that point, not at the limit itself (the steps in between are skipped, so they change
  nothing), and the learning-rate schedule, which lives on the host, still advances on a
  skipped step.
* **On CPU** (and with an optimizer that has no ``found_inf``), a host read is free, so
  every step is checked on the spot: neither the optimizer nor the schedule is stepped,
  and the run stops at the limit itself.
* **Under fp16** the GradScaler reads its scale on the host every step already, so the
  check is per step. Only the loss is checked: gradients that overflow are the scaler's to
  skip, and it skips a non-finite loss's gradients too (skipping the optimizer ourselves
  after its unscale would break its state).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .errors import NonFiniteError

# What the message calls a non-finite gradient norm (losses are named loss/<component>).
GRADIENT = "the gradient norm"


def nonfinite_tensors(model: torch.nn.Module) -> tuple[list[str], int]:
    """Names of ``model``'s floating-point weights and buffers that hold NaN or infinity,
    and how many floating-point tensors there are in all."""
    named = [(name, t) for name, t in model.state_dict().items() if t.is_floating_point()]
    if not named:
        return [], 0
    # One host read for the whole model, not one per tensor.
    finite = torch.stack([torch.isfinite(t).all().cpu() for _, t in named]).tolist()
    return [name for (name, _), ok in zip(named, finite) if not ok], len(named)


def check_finite_weights(model: torch.nn.Module, action: str) -> None:
    """Refuse to ``action`` (e.g. "save best/") a model whose weights hold NaN or infinity.

    Raises:
        NonFiniteError: naming how many tensors are affected and the first of them.
    """
    bad, total = nonfinite_tensors(model)
    if bad:
        raise NonFiniteError(
            f"refusing to {action}: {len(bad)} of {total} weight tensors hold NaN or "
            f"infinite values (first: {bad[0]}); training diverged - retrain with a lower "
            "train.lr (or train.max_grad_norm set)")


def _names(nonfinite: list[str]) -> str:
    """What a message blames: the loss terms, else the total, else the gradient norm (a
    non-finite term makes the total and the gradients non-finite too)."""
    terms = [f"loss/{n}" for n in nonfinite if n not in ("total", GRADIENT)]
    return ", ".join(terms) or ("loss" if "total" in nonfinite else GRADIENT)


@dataclass
class NonFiniteGuard:
    """Counts non-finite steps and stops the run after ``limit`` in a row.

    The counters are tensors on ``device``, so :meth:`observe` never syncs; only
    :meth:`check` and :meth:`take_skipped` read them on the host. The loss components are
    kept as one vector (a position per name ever seen), so a step costs a dozen tiny
    device operations however many matches the objective has.

    Attributes:
        limit: consecutive non-finite steps that stop the run.
        on_device: skip through the optimizer's ``found_inf`` and read the counters only
            at :meth:`check` (GPU); otherwise the caller checks and skips every step.
        check_gradients: a non-finite gradient norm makes a step non-finite too (not under
            fp16, where the GradScaler owns overflowing gradients).
    """

    limit: int
    device: torch.device
    on_device: bool = False
    check_gradients: bool = True
    _order: list[str] = field(default_factory=list, init=False)  # position -> name
    _positions: dict[tuple[str, ...], torch.Tensor] = field(default_factory=dict, init=False)
    _skipped: torch.Tensor = field(init=False)  # non-finite steps since take_skipped
    _streak: torch.Tensor = field(init=False)  # non-finite steps in a row, now
    _streak_start: torch.Tensor = field(init=False)  # the step the streak began at
    _streak_what: torch.Tensor = field(init=False)  # by position: non-finite in the streak
    _hit: torch.Tensor = field(init=False)  # whether a streak reached the limit
    _hit_start: torch.Tensor = field(init=False)
    _hit_what: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        def zeros(dtype: torch.dtype, *shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=dtype, device=self.device)

        self._skipped, self._streak = zeros(torch.long), zeros(torch.long)
        self._streak_start, self._hit_start = zeros(torch.long), zeros(torch.long)
        self._hit = zeros(torch.bool)
        self._streak_what, self._hit_what = zeros(torch.bool, 0), zeros(torch.bool, 0)

    @classmethod
    def for_run(cls, accelerator, optimizer: torch.optim.Optimizer,
                limit: int) -> NonFiniteGuard:
        """The guard for a run on ``accelerator`` stepping ``optimizer`` (see the module
        docstring for which check runs where)."""
        inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
        scaler = getattr(accelerator, "scaler", None) is not None
        on_device = accelerator.device.type != "cpu" and not scaler and \
            getattr(inner, "_step_supports_amp_scaling", False)
        return cls(limit, accelerator.device, on_device=on_device, check_gradients=not scaler)

    def _place(self, names: tuple[str, ...]) -> torch.Tensor:
        """The positions of ``names`` in the component vectors (new names get new ones)."""
        positions = self._positions.get(names)
        if positions is None:
            new = [n for n in names if n not in self._order]
            self._order.extend(new)
            pad = torch.zeros(len(new), dtype=torch.bool, device=self.device)
            self._streak_what = torch.cat([self._streak_what, pad])
            self._hit_what = torch.cat([self._hit_what, pad])
            positions = torch.tensor([self._order.index(n) for n in names], device=self.device)
            self._positions[names] = positions
        return positions

    def observe(self, step: int, names: Sequence[str], losses: torch.Tensor,
                grad_norm: torch.Tensor | None = None,
                any_process: Callable[[torch.Tensor], torch.Tensor] | None = None
                ) -> torch.Tensor:
        """Record optimizer step ``step`` (1-based); return whether it is non-finite, as a
        0-dim bool tensor on the device (no host sync).

        Args:
            step: the step number, as the history logs it.
            names: the loss components, ``"total"`` for the weighted sum.
            losses: their values, a vector in the order of ``names``.
            grad_norm: the clipped gradients' total norm, when clipping computed one.
            any_process: sums a tensor over the processes, so that every process skips
                the same steps (``None`` in a single process).
        """
        names, values = tuple(names), losses.detach().float().reshape(-1)
        if self.check_gradients and grad_norm is not None:
            names += (GRADIENT,)
            values = torch.cat([values, grad_norm.detach().float().reshape(1).to(values)])
        nonfinite = ~torch.isfinite(values)
        if any_process is not None:
            nonfinite = any_process(nonfinite.float()) > 0
        positions = self._place(names)
        flags = torch.zeros_like(self._streak_what).index_copy_(0, positions, nonfinite)
        bad = nonfinite.any()
        self._skipped += bad
        self._streak = (self._streak + 1) * bad
        self._streak_start = torch.where(self._streak == 1, step, self._streak_start)
        # A good step ends the streak and forgets what went non-finite in it.
        self._streak_what = (self._streak_what | flags) & bad
        hit_now = (self._streak == self.limit) & ~self._hit
        self._hit |= hit_now
        self._hit_start = torch.where(hit_now, self._streak_start, self._hit_start)
        self._hit_what = torch.where(hit_now, self._streak_what, self._hit_what)
        return bad

    def check(self) -> None:
        """Raise when a streak of non-finite steps reached the limit (reads the device).

        Raises:
            NonFiniteError: naming what went non-finite and the step the streak began at.
        """
        if not bool(self._hit):
            return
        what = [n for n, flag in zip(self._order, self._hit_what.tolist()) if flag]
        raise NonFiniteError(
            f"training diverged: {_names(what)} went NaN or infinite at step "
            f"{int(self._hit_start)} and stayed so for {self.limit} steps in a row, which "
            f"were skipped (train.max_nonfinite_steps: {self.limit}); lower train.lr, keep "
            "train.max_grad_norm set, or check the data and the distill weights")

    def step(self, accelerator, optimizer: torch.optim.Optimizer, scheduler: Any,
             bad: torch.Tensor) -> None:
        """Step ``optimizer`` and ``scheduler`` for the step :meth:`observe` called ``bad``,
        or skip it when non-finite: through ``found_inf`` on the device, else on the host
        (see the module docstring).

        Raises:
            NonFiniteError: on the host, the step that reached the limit (:meth:`check`).
        """
        if self.on_device:
            inner = getattr(optimizer, "optimizer", optimizer)  # Accelerate's wrapper
            # The fused update reads this on the device and leaves everything as it was
            # where it is 1: a skip without a host sync (the GradScaler's mechanism).
            inner.found_inf = bad.float()
            try:
                optimizer.step()
            finally:
                del inner.found_inf
            scheduler.step()
            return
        self.check()
        # Under fp16 the GradScaler skips the step itself (see the module docstring).
        if accelerator.scaler is not None or not bool(bad):
            optimizer.step()
            if not accelerator.optimizer_step_was_skipped:
                scheduler.step()

    def take_skipped(self) -> int:
        """The non-finite (skipped) steps since the last call (reads the device)."""
        skipped = int(self._skipped)
        self._skipped.zero_()
        return skipped


__all__ = ["GRADIENT", "NonFiniteGuard", "check_finite_weights", "nonfinite_tensors"]
