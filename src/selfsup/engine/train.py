"""The training loop, read top to bottom: ``fit`` sets up, then runs ``train_one_epoch`` and
``end_epoch`` until the planned steps are done; ``training_step`` is the core (views, loss,
backward, step).

Lightning Fabric supplies the distributed machinery (DDP over gloo on CPU or NCCL on GPU,
torchrun and multi-node launching) and the precision plugin (bf16 autocast); the loop itself
stays explicit here. A :class:`TimeBudget` turns ``--time-budget`` into a number of steps.

Example:
    >>> import numpy as np, tempfile, lightning
    >>> from selfsup.config import PretrainConfig
    >>> from selfsup.data.arrays import ArraySource
    >>> from selfsup.methods import build_method
    >>> from selfsup.views import ImageViews, image_recipe
    >>> source = ArraySource(np.random.randint(0, 255, (64, 8, 8), dtype=np.uint8))
    >>> from selfsup.modalities.image import build_image_encoder
    >>> method = build_method("simclr", build_image_encoder("small-cnn", 1, 8, width=4))
    >>> cfg = PretrainConfig(data="-", epochs=1, batch_size=32, precision="fp32")
    >>> fabric = lightning.Fabric(accelerator="cpu", devices=1)
    >>> views = ImageViews(image_recipe("simclr"), 8, 1)
    >>> fit(method, source, views, cfg, tempfile.mkdtemp(), fabric, show_progress=False).step
    2
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import lightning
import numpy as np
import torch
from torch import nn

from selfsup.backbones import backbone_blocks
from selfsup.backbones.hf import is_hf_backbone
from selfsup.config import PretrainConfig
from selfsup.core.files import write_text
from selfsup.core.memory import StepMemory, steps_reuse_memory
from selfsup.core.progress import TrainingProgress
from selfsup.data.base import (
    Batch,
    ItemReadError,
    Source,
    by_length,
    grouped_by_length,
    unit_items,
)
from selfsup.data.loading import EpochReader
from selfsup.data.splits import item_codes
from selfsup.engine.checkpoint import load_checkpoint, save_checkpoint
from selfsup.engine.interrupt import StopRequests, TrainingInterrupted
from selfsup.engine.metrics import EPOCHS_FILE, MetricsLog
from selfsup.engine.monitor import CollapseError, EpochMonitor, save_encoder_weights
from selfsup.engine.online_probe import OnlineProbe
from selfsup.engine.optim import (
    BASE_LR,
    BASE_WEIGHT_DECAY,
    build_optimizer,
    layer_scales,
    warmup_cosine,
)
from selfsup.methods.base import Method, OnceWork

CHECKPOINT = Path("checkpoints") / "last.ckpt"
SKIPPED_FILE = "skipped.txt"
#: The run's log: every progress line and note, whatever the screen showed.
LOG_FILE = "train.log"
#: An epoch's end writes a checkpoint when at least this many seconds passed since the last
#: one (a run of many tiny epochs does not spend its time writing them); mid-epoch ones come
#: every ``checkpoint_every`` minutes, and the last step always writes one.
EPOCH_CHECKPOINT_GAP = 60.0
DEFAULT_EPOCHS = 100
# Steps between two plans of a time budget once the first ones are made.
_REPLAN_EVERY = 50
#: A pretrained ``hf:`` backbone's default learning rate, as a share of the optimizer's base
#: rate (5e-5 for AdamW at batch 256): a full rate would wash out what it learned.
PRETRAINED_LR_SCALE = 1 / 40
#: The label-free monitor measures after an epoch while its time so far stays under this share
#: of the training time (and always after the first and the last epoch), so tiny epochs do not
#: pay for it every time.
MONITOR_SHARE = 0.1
#: Minutes of training between two measurements inside a long epoch, by default (see
#: :func:`measure_due_inside`).
MEASURE_EVERY = 5.0
#: The most of a time budget a method's fill before the first step may take (MSF's memory
#: bank; it goes on filling with each step's targets).
FILL_SHARE = 0.25
#: The most of a time budget one measurement of the held-out items may take: beyond it
#: fewer of them are measured, but not fewer than ``MIN_MEASURED``.
MEASURE_SHARE = 0.15
MIN_MEASURED = 512
#: A run planned with fewer optimizer steps than this is told so before it starts.
FEW_STEPS = 50
#: A run planned to take longer than this (seconds, at the measured pace) without a time
#: budget says so once its pace is known, with how to make it shorter.
LONG_RUN = 3600.0
#: Training seconds measured before the length of a run is estimated.
_LENGTH_PACE_SECONDS = 20.0
#: Steps of each process not counted in the pace of a time budget: they hold torch.compile's
#: compilation (tens of seconds) and the first, slower oneDNN calls.
_PACE_SKIP_STEPS = 2


@dataclass
class TrainState:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    total_steps: int = 0
    train_seconds: float = 0.0
    items_seen: int = 0
    monitor_seconds: float = 0.0
    #: Seconds the method took to read items before its first step (MSF's memory bank):
    #: paid from the time budget, but not part of the steps' pace.
    fill_seconds: float = 0.0
    #: Times the label-free monitor measured (``monitor_seconds`` is their sum).
    measures: int = 0
    checkpoint_seconds: float = 0.0
    #: Batches of the current epoch already consumed: a resumed run continues from the next.
    batch_in_epoch: int = 0
    #: The batch at which the run's planned end (``--time-budget``, ``--steps``) cut its last
    #: epoch short (0: it was not cut): a run extended later finishes that epoch first, so
    #: 200,000 photos trained 30 minutes at a time are all met before any is met twice.
    cut_at: int = 0
    #: Unreadable items met and listed in skipped.txt (known at the end).
    skipped: int = 0
    #: Held-out items each measurement reads, where a time budget made them fewer than
    #: those held out (0: all), so that a resumed run measures the same ones.
    measured_items: int = 0
    #: Training seconds at the monitor's last measurement: inside a long epoch the next one
    #: comes ``--measure-every`` minutes of training later.
    measured_at: float = 0.0
    #: The step of the monitor's last measurement (-1: none yet): an epoch's end at the step
    #: of one inside it (stopped there by ``--patience``) does not measure the same weights
    #: again.
    measured_step: int = -1


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images (4-d) in channels-last memory, which oneDNN convolves faster; series as they are."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def epoch_batches(
    n: int | Source,
    batch_size: int,
    world_size: int,
    rank: int,
    seed: int,
    epoch: int,
    group_by_length: bool = False,
) -> list[np.ndarray]:
    """This process's batches of indices for ``epoch``: a seeded shuffle (the source's
    ``epoch_order`` when a source is given), sharded by rank; with ``group_by_length``, each
    step's items are of like length (``grouped_by_length``) where the source's items have
    lengths (texts).

    The order depends only on (seed, epoch), so a resumed run sees the same batches.

    Example:
        >>> [b.tolist() for b in epoch_batches(6, 2, 1, 0, seed=0, epoch=0)]
        [[3, 2], [5, 4], [0, 1]]
    """
    source = n if isinstance(n, Source) else None
    if source is not None:
        order = source.epoch_order(seed, epoch)
        n = len(order)
    else:
        order = np.random.default_rng([seed, epoch]).permutation(n)
    per_step = batch_size * world_size
    steps = n // per_step
    order = order[: steps * per_step]
    if group_by_length and source is not None:
        order = grouped_by_length(source, order, per_step, np.random.default_rng([seed, epoch, 1]))
    mine = order.reshape(steps, world_size, batch_size)[:, rank]
    return list(mine)


def _record_skipped(run_dir: Path, source: Source, batch: Batch, strict: bool) -> None:
    if not batch.skipped:
        return
    if strict:
        item = batch.skipped[0]
        raise ItemReadError(
            f"{source.name}/{item.item_id}",
            f"{item.reason} (--strict is on; without it unreadable items are skipped and listed "
            f"in {SKIPPED_FILE})",
        )
    with (run_dir / SKIPPED_FILE).open("a") as f:
        for item in batch.skipped:
            f.write(f"{item.item_id}\t{item.reason}\n")


def write_skipped(run_dir: Path, met: dict[str, str]) -> int:
    """List every unreadable item once in ``skipped.txt`` (id, tab, reason, sorted by id):
    those training batches met (possibly in worker processes) and those ``met`` in this
    process (channel statistics, the held-out monitor); the number of items."""
    path = run_dir / SKIPPED_FILE
    found = dict(met)
    if path.exists():
        for line in path.read_text().splitlines():
            item_id, _, reason = line.partition("\t")
            found.setdefault(item_id, reason)
    write_text(path, "".join(f"{k}\t{found[k]}\n" for k in sorted(found)))
    return len(found)


def planned_steps(cfg: PretrainConfig, steps_per_epoch: int) -> int:
    """The steps a run plans before any time budget: ``cfg.steps`` and ``cfg.epochs`` (the
    smaller when both are set), ``DEFAULT_EPOCHS`` epochs when neither nor a time budget is
    set, else no limit."""
    limits = []
    if cfg.steps is not None:
        limits.append(cfg.steps)
    if cfg.epochs is not None:
        limits.append(cfg.epochs * steps_per_epoch)
    if not limits and cfg.time_budget is None:
        limits.append(DEFAULT_EPOCHS * steps_per_epoch)
    return min(limits) if limits else 10**12


class TimeBudget:
    """Turns ``--time-budget`` into a number of steps, from the pace measured so far.

    The first ``_PACE_SKIP_STEPS`` steps of each process (torch.compile's compilation, the
    first, slower oneDNN calls) are left out of the pace. The plan is made after 1, 2, 4,
    8... steps, every ``_REPLAN_EVERY`` steps and at the end of every epoch; rank 0's
    estimate wins, so every process keeps the same schedule.

    A method's work done once per item and kept (``Method.once_work``: a distillation
    teacher's targets, computed in the first epoch) is left out of the pace and planned on
    its own, for the items still to meet: the first epoch's pace is not taken for the next.

    Args:
        cfg: the run's configuration (its ``time_budget`` in minutes; None: no budget).
        steps_per_epoch: steps of one epoch.
        fabric: broadcasts rank 0's plan.
        first_step: the step this process starts at (a resumed run's).
        once: the method's ``once_work`` (None: every step costs alike).
        epoch_items: this process's items in an epoch (what ``once`` work is still to do).
        measure_seconds: what the label-free monitor's measurement after the last epoch
            will take (0: none is made), until one has been made and its cost is known: it
            is paid from the budget too (a year of minute logs: 438 days take 40 s, a fifth
            of 3 minutes). :func:`fit` times it on a few held-out items before the first
            step (:meth:`EpochMonitor.estimate_seconds`).
    """

    def __init__(
        self,
        cfg: PretrainConfig,
        steps_per_epoch: int,
        fabric: lightning.Fabric,
        first_step: int,
        once: Callable[[], OnceWork | None] | None = None,
        epoch_items: int = 0,
        measure_seconds: float = 0.0,
    ) -> None:
        self.cfg = cfg
        self.measure_seconds = measure_seconds
        self.steps_per_epoch = steps_per_epoch
        self.fabric = fabric
        self.first_step = first_step
        self.once = once
        self.epoch_items = epoch_items
        self.once_start = self._once_seconds()
        #: The step and the steps' own seconds (``step_seconds``) the pace is measured from.
        self.pace_from: tuple[int, float] | None = None
        self.pace_from_training = 0.0
        self.length_told = cfg.time_budget is not None

    def _work(self) -> OnceWork | None:
        return self.once() if self.once is not None else None

    def _once_seconds(self) -> float:
        work = self._work()
        return work.seconds if work is not None else 0.0

    def step_seconds(self, state: TrainState) -> float:
        """Training seconds less the once-per-item work this process's steps did."""
        return state.train_seconds - (self._once_seconds() - self.once_start)

    def once_left(self) -> tuple[float, int]:
        """The once-per-item work still to do: its seconds, at the cost per item so far, and
        the steps that will do it (the items of an epoch not met yet, up to the method's
        limit); (0, 0) when there is none.

        Example:
            >>> from selfsup.methods.base import OnceWork
            >>> work = OnceWork(seconds=10.0, items=1000, limit=200_000)
            >>> budget = TimeBudget(PretrainConfig(data="x"), 100, None, 0, lambda: work, 3000)
            >>> budget.once_left()
            (20.0, 67)
        """
        work = self._work()
        if work is None or not work.items or not self.epoch_items:
            return 0.0, 0
        items = max(0, min(self.epoch_items, work.limit) - work.items)
        per_step = self.epoch_items / self.steps_per_epoch
        return items * work.per_item, math.ceil(items / per_step)

    def _seconds_left(self, state: TrainState) -> float:
        """The planned steps left at the steps' pace since ``pace_from``, plus the
        once-per-item work still to come within them."""
        assert self.pace_from is not None and state.step > self.pace_from[0]
        step, seconds = self.pace_from
        steps_left = max(0, state.total_steps - state.step)
        left = steps_left * (self.step_seconds(state) - seconds) / (state.step - step)
        once_seconds, once_steps = self.once_left()
        if once_steps:
            left += once_seconds * min(1.0, steps_left / once_steps)
        return left

    def remaining(self, state: TrainState) -> float | None:
        """The progress's ETA where a method does work once per item (the mean pace of a
        distillation's first epoch, teacher included, would take hours for minutes); None
        for the others and before the pace is known."""
        if self._work() is None:
            return None
        if self.pace_from is None or state.step <= self.pace_from[0]:
            return None
        return self._seconds_left(state)

    def length_note(self, state: TrainState) -> str | None:
        """Once, when the pace is known: what a run without a time budget will take, when
        that is more than ``LONG_RUN`` seconds, and how to shorten it.

        Example:
            >>> cfg = PretrainConfig(data="x")
            >>> budget = TimeBudget(cfg, 1000, None, first_step=0)
            >>> budget.pace_from = (2, 1.0)
            >>> state = TrainState(step=102, total_steps=100_000, train_seconds=31.0)
            >>> budget.length_note(state)[:62]
            'note: 100,000 steps planned (the default 100 epochs) take abou'
            >>> budget.length_note(state) is None  # said once
            True
        """
        if self.length_told or self.pace_from is None:
            return None
        step = self.pace_from[0]
        measured = state.train_seconds - self.pace_from_training
        if measured < _LENGTH_PACE_SECONDS or state.step <= step:
            return None
        self.length_told = True
        left = self._seconds_left(state)
        if left < LONG_RUN:
            return None
        if self.cfg.steps is not None:
            why = "--steps"
        elif self.cfg.epochs is not None:
            why = f"{self.cfg.epochs} epochs"
        else:
            why = f"the default {DEFAULT_EPOCHS} epochs"
        hours, minutes = divmod(round(left / 60), 60)
        return (
            f"note: {state.total_steps:,} steps planned ({why}) take about {hours} h "
            f"{minutes:02d} min more at this pace; --time-budget MINUTES or --epochs N makes "
            f"a shorter run (a checkpoint is kept every {self.cfg.checkpoint_every:g} min, and "
            f"`--resume` continues a stopped run)"
        )

    def after_step(self, state: TrainState) -> int | None:
        """Record the pace's start; the new plan after the steps that refine it (else None).

        The plan is made after 1, 2, 4, 8... steps of this process, then every
        ``_REPLAN_EVERY`` steps, so a run of slow steps (large images on a CPU) keeps to its
        budget long before an epoch ends; the same steps on every process (the plan is
        broadcast).
        """
        done = state.step - self.first_step
        if done == _PACE_SKIP_STEPS:
            self.pace_from = (state.step, self.step_seconds(state))
            self.pace_from_training = state.train_seconds
        if self.cfg.time_budget is None:
            return None
        if (done & (done - 1)) == 0 or done % _REPLAN_EVERY == 0:
            return self.plan(state)
        return None

    def plan(self, state: TrainState) -> int:
        """The steps that fit; see :func:`_fit_to_budget`."""
        return _fit_to_budget(
            self.cfg,
            state,
            self.steps_per_epoch,
            self.fabric,
            self.pace_from,
            self.step_seconds(state),
            self.once_left(),
            self.measure_seconds,
        )


def _steps_in(left: float, per_step: float, once_seconds: float, once_steps: int) -> int:
    """Steps that fit in ``left`` seconds at ``per_step`` each, when the next
    ``once_steps`` of them also share ``once_seconds`` of once-per-item work.

    Example:
        >>> _steps_in(100.0, 1.0, 0.0, 0), _steps_in(100.0, 1.0, 50.0, 10)
        (100, 50)
        >>> _steps_in(30.0, 1.0, 50.0, 10)  # the budget ends within the first epoch
        5
    """
    if left <= 0:
        return 0
    per_step = max(per_step, 1e-9)
    if once_steps:
        first = per_step + once_seconds / once_steps
        if left < once_steps * first:
            return math.floor(left / first)
        return once_steps + math.floor((left - once_steps * first) / per_step)
    return math.floor(left / per_step)


def _fit_to_budget(
    cfg: PretrainConfig,
    state: TrainState,
    steps_per_epoch: int,
    fabric: lightning.Fabric,
    pace_from: tuple[int, float] | None = None,
    step_seconds: float | None = None,
    once_left: tuple[float, int] = (0.0, 0),
    measure_seconds: float = 0.0,
) -> int:
    """Steps that fit in what is left of the time budget at the pace measured so far.

    The pace is measured from ``pace_from`` (a step and the steps' own seconds at it) when it
    is given and behind the current step, so that compilation in the first steps is not
    taken for the speed of every step; else over all steps. ``step_seconds`` are the steps'
    own seconds (the training seconds less a method's once-per-item work, ``once_left``
    seconds of which are still to come over as many steps; see ``TimeBudget``). Less than a
    twentieth of an epoch that has not begun is not begun (its monitoring and checkpoint
    would cost more than its few steps bring); a long epoch under way is cut wherever the
    budget ends.
    """
    cap = planned_steps(cfg, steps_per_epoch)
    if cfg.time_budget is None or state.step == 0:
        return cap
    trained = state.train_seconds if step_seconds is None else step_seconds
    if pace_from is not None and state.step > pace_from[0]:
        seconds_per_step = (trained - pace_from[1]) / (state.step - pace_from[0])
    else:
        seconds_per_step = trained / state.step
    seconds_per_step = max(seconds_per_step, 1e-9)
    # Monitoring, checkpoints and a method's fill are paid from the same budget as training,
    # and so is the monitor's measurement after the last epoch, still to come (at the cost
    # of those made, else as estimated).
    final = state.monitor_seconds / state.measures if state.measures else measure_seconds
    left = (
        cfg.time_budget * 60
        - state.train_seconds
        - state.monitor_seconds
        - state.checkpoint_seconds
        - state.fill_seconds
        - final
    )
    steps = state.step + _steps_in(left, seconds_per_step, *once_left)
    # A sliver of an epoch not begun yet is not begun: its monitoring and checkpoint would
    # cost more than its few steps bring. Epochs start every steps_per_epoch from this
    # one's start (an epoch the budget cut short ended early), and a sliver is under a
    # twentieth of an epoch or under the steps one measurement of the monitor takes.
    epoch_start = state.step - min(state.batch_in_epoch, state.step)
    last_start = epoch_start + (steps - epoch_start) // steps_per_epoch * steps_per_epoch
    measuring = state.monitor_seconds / state.measures if state.measures else 0.0
    sliver = max(steps_per_epoch / 20, measuring / seconds_per_step)
    if steps - last_start < sliver and last_start >= state.step:
        steps = last_start
    # Every process must agree on the schedule: rank 0's estimate wins.
    return int(fabric.broadcast(min(cap, steps), src=0))


def unextended_warning(cfg: PretrainConfig, state: TrainState, steps_per_epoch: int) -> str:
    """Why a finished run resumed with a longer ``--time-budget`` trains no step: what it
    leaves would begin an epoch for fewer steps than a twentieth of one (see
    :func:`_fit_to_budget`).

    Example:
        >>> cfg = PretrainConfig(data="photos", time_budget=5)
        >>> unextended_warning(cfg, TrainState(step=73, train_seconds=152.0), 3093)
        'the finished run is not extended: what --time-budget 5 leaves after its 2.5 minutes of training is too short to begin another epoch (a twentieth of one: 155 steps, about 5.4 minutes at its pace); give a longer --time-budget'
    """  # noqa: E501
    per_step = state.train_seconds / max(state.step, 1)
    sliver = math.ceil(steps_per_epoch / 20)
    return (
        f"the finished run is not extended: what --time-budget {cfg.time_budget:g} leaves "
        f"after its {state.train_seconds / 60:.1f} minutes of training is too short to begin "
        f"another epoch (a twentieth of one: {sliver:,} steps, about "
        f"{sliver * per_step / 60:.1f} minutes at its pace); give a longer --time-budget"
    )


def few_steps_warning(steps: int, items: int, batch_size: int) -> str:
    """What a run of fewer than ``FEW_STEPS`` optimizer steps says before it starts.

    Example:
        >>> few_steps_warning(2, 121, 108)[:60]
        '[bold red]warning[/bold red]: only 2 optimizer steps planned'
    """
    return (
        f"[bold red]warning[/bold red]: only {steps} optimizer steps planned ({items} items in "
        f"batches of {batch_size}): the encoder will barely change; lower --batch-size, or "
        "raise --epochs or --time-budget"
    )


def budget_steps_warning(state: TrainState, cfg: PretrainConfig) -> str:
    """What a time-budgeted run that ended after fewer than ``FEW_STEPS`` optimizer steps
    says: its steps were too slow for its budget.

    Example:
        >>> state = TrainState(step=2, train_seconds=42.0)
        >>> cfg = PretrainConfig(data="-", time_budget=1.0, batch_size=256)
        >>> budget_steps_warning(state, cfg)[:75]
        '[bold red]warning[/bold red]: only 2 optimizer steps fit in the 1-minute --'
    """
    return (
        f"[bold red]warning[/bold red]: only {state.step} optimizer steps fit in the "
        f"{cfg.time_budget:g}-minute --time-budget ({state.train_seconds / state.step:.0f} s "
        f"a step of {cfg.batch_size} items): the encoder barely changed; a longer "
        "--time-budget or a smaller --batch-size gives it more steps"
    )


def monitor_due(state: TrainState) -> bool:
    """Whether the label-free monitor measures after the epoch just ended: after the first
    and the last, and in between while its time stays under ``MONITOR_SHARE`` of training's.

    Example:
        >>> monitor_due(TrainState(step=50, epoch=3, total_steps=100, train_seconds=10.0,
        ...                        monitor_seconds=2.0))
        False
        >>> monitor_due(TrainState(step=100, epoch=4, total_steps=100, monitor_seconds=2.0))
        True
    """
    first, last = state.epoch == 1, state.step >= state.total_steps
    return first or last or state.monitor_seconds <= MONITOR_SHARE * state.train_seconds


def measure_due_inside(
    state: TrainState, cfg: PretrainConfig, steps_per_epoch: int, cost: float
) -> bool:
    """Whether the label-free monitor measures now, inside an epoch: ``cfg.measure_every``
    minutes of training after its last measurement, unless the end of the epoch or of the
    run (where it measures anyway) is under half that away. By default (no
    ``measure_every``) every ``MEASURE_EVERY`` minutes while the monitor's time, this
    measurement's ``cost`` (seconds) included, stays under ``MONITOR_SHARE`` of training's;
    a gap given is kept whatever the measurements cost. An epoch of 200,000 photos takes 2
    hours on 2 cores: measured at its end only, a 30-minute run would show one point and a
    collapse would go unseen for hours.

    Example:
        >>> state = TrainState(step=130, total_steps=3000, batch_in_epoch=130,
        ...                    train_seconds=310.0)
        >>> measure_due_inside(state, PretrainConfig(data="x"), 3093, cost=25.0)
        True
        >>> measure_due_inside(state, PretrainConfig(data="x"), 3093, cost=40.0)  # over 10%
        False
        >>> measure_due_inside(state, PretrainConfig(data="x", measure_every=5), 3093, 40.0)
        True
        >>> measure_due_inside(state, PretrainConfig(data="x"), 180, 25.0)  # ends in 2 min
        False
    """
    if cfg.measure_every == 0 or state.step == 0:
        return False
    gap = (cfg.measure_every or MEASURE_EVERY) * 60
    if state.train_seconds - state.measured_at < gap:
        return False
    per_step = state.train_seconds / state.step
    left = min(state.total_steps - state.step, steps_per_epoch - state.batch_in_epoch)
    if left * per_step < gap / 2:
        return False
    if cfg.measure_every is not None:  # asked for: kept to
        return True
    return state.monitor_seconds + cost <= MONITOR_SHARE * state.train_seconds


def _epoch_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.safetensors"


@dataclass
class Training:
    """What ``setup`` prepares for the loop: the wrapped model and optimizer, the schedule,
    and what watches and records training."""

    method: Method
    model: nn.Module
    optimizer: torch.optim.Optimizer
    views: nn.Module
    peak_lr: float
    warmup_wanted: int
    constant: bool
    steps_per_epoch: int
    budget: TimeBudget
    progress: TrainingProgress
    probe: OnlineProbe | None = None
    #: The online probe's label of each training item (-1: none; see ``item_codes``).
    probe_labels: np.ndarray | None = None
    monitor: EpochMonitor | None = None
    log: MetricsLog | None = None
    epoch_log: MetricsLog | None = None
    warmup_steps: int = 0
    last_checkpoint: float = 0.0
    #: Batches whose gradients one optimizer step sums (``--accumulate``).
    accumulate: int = 1
    #: Ctrl-C and SIGTERM, asked during the loop: it stops at a step's end (see
    #: :mod:`selfsup.engine.interrupt`).
    stop: StopRequests = field(default_factory=StopRequests)

    def replan(self, state: TrainState, total: int) -> None:
        """Set the planned total steps; the warmup is at most a tenth of them."""
        state.total_steps = total
        self.warmup_steps = min(self.warmup_wanted, total // 10)
        self.progress.set_total(total)

    def lr_at(self, state: TrainState) -> float:
        """The learning rate of the next step: linear warmup, then cosine decay or constant."""
        return warmup_cosine(
            state.step, state.total_steps, self.warmup_steps, self.peak_lr, constant=self.constant
        )


def training_step(
    t: Training,
    items: torch.Tensor,
    lr: float,
    fabric: lightning.Fabric,
    state: TrainState,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """One optimizer step on a batch of items: views, loss, backward, step; the loss, unread.

    The loss comes back as a tensor on the device, not a number: reading it makes the host
    wait for the step to finish, so on a GPU the loop reads it only after queueing the next
    step (``finite_loss``, ``READ_AT_ONCE``) and the GPU never idles while the host prepares
    a batch's views.

    With ``t.accumulate`` above 1 the batch is cut into that many parts, each seen and
    back-propagated on its own (its loss divided by the parts, so the summed gradient is the
    mean's), and processes synchronize their gradients only after the last part. The online
    probe (given the items' ``labels``) trains on each part's features.
    """
    for group in t.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    t.optimizer.zero_grad(set_to_none=True)
    parts = items.chunk(t.accumulate)
    label_parts = labels.chunk(t.accumulate) if labels is not None else [None] * len(parts)
    total = torch.zeros((), device=fabric.device)
    for number, (part, part_labels) in enumerate(zip(parts, label_parts, strict=True)):
        inputs = t.views(unit_items(part.to(fabric.device, non_blocking=True)))
        last = number == len(parts) - 1
        with fabric.no_backward_sync(t.model, enabled=not last):
            loss = t.model([channels_last(v) for v in inputs])
            fabric.backward(loss / len(parts))
        total += loss.detach().float() / len(parts)
        if t.probe is not None and part_labels is not None:
            t.probe.step(part_labels)
    t.optimizer.step()
    t.method.on_step_end(state.step / max(1, state.total_steps))
    return total


def finite_loss(loss: torch.Tensor, step: int, epoch: int) -> float:
    """The value of step ``step``'s loss; a FloatingPointError when it is NaN or infinite.

    Read one step late (see ``training_step``): by then the bad step has updated the weights,
    which the error stops before anything saves them; the last checkpoint is from before it.

    Example:
        >>> finite_loss(torch.tensor(0.5), 3, 1)
        0.5
    """
    value = loss.item()
    if not math.isfinite(value):
        raise FloatingPointError(
            f"the loss became {value} at step {step} (epoch {epoch}); try a lower --lr, or "
            "--precision fp32"
        )
    return value


def setup(
    method: Method,
    source: Source,
    views: nn.Module,
    cfg: PretrainConfig,
    run_dir: Path,
    fabric: lightning.Fabric,
    resume: bool,
    show_progress: bool,
    monitor: EpochMonitor | None,
) -> tuple[Training, TrainState]:
    """Optimizer, schedule, probe, logs and progress; the state restored on resume."""
    world, rank = fabric.world_size, fabric.global_rank
    per_step = cfg.batch_size * cfg.accumulate * world
    steps_per_epoch = len(source) // per_step
    if steps_per_epoch == 0:
        raise ValueError(
            f"{source.name}: {len(source)} items are fewer than one step of {cfg.batch_size} "
            f"items x {cfg.accumulate} accumulated x {world} processes; lower --batch-size "
            f"or --accumulate"
        )
    lr = cfg.lr
    if lr is None:
        pretrained = PRETRAINED_LR_SCALE if is_hf_backbone(cfg.backbone) else 1.0
        lr = BASE_LR[cfg.optimizer] * per_step / 256 * pretrained
    weight_decay = (
        cfg.weight_decay if cfg.weight_decay is not None else BASE_WEIGHT_DECAY[cfg.optimizer]
    )
    blocks = (
        backbone_blocks(method.encoder.backbone) if cfg.layer_decay or cfg.freeze_blocks else []
    )
    if cfg.freeze_blocks > len(blocks):
        raise ValueError(
            f"--freeze-blocks {cfg.freeze_blocks}: the backbone has {len(blocks)} blocks"
        )
    for block in blocks[: cfg.freeze_blocks]:
        block.requires_grad_(False)
        for layer in block.modules():  # batch-norm statistics stay as they are too
            if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
                layer.momentum = 0.0
    scales = layer_scales(blocks, cfg.layer_decay) if cfg.layer_decay else None
    gpu = fabric.device.type == "cuda"  # fused AdamW: one kernel (see build_optimizer)
    optimizer = build_optimizer(cfg.optimizer, method, lr, weight_decay, scales, fused=gpu)
    probe = None
    codes = item_codes(source)  # -1: an item without a label (a file labelled on some rows)
    # Labels too rare for a batch to hold one (300 among 200,000 photos: one every ten
    # batches of 64) leave the probe at chance; the monitor's kNN vote reads them instead.
    rare = (
        codes is not None
        and monitor is not None
        and monitor.labelled is not None
        and float((codes >= 0).mean()) * cfg.batch_size < 1
    )
    if cfg.online_probe and codes is not None and codes.max(initial=-1) >= 0 and not rare:
        num_classes = int(codes.max()) + 1
        probe = OnlineProbe(
            method.encoder, method.encoder.feature_dim, num_classes, device=fabric.device
        )
    state = TrainState(total_steps=planned_steps(cfg, steps_per_epoch))
    epoch_items = steps_per_epoch * cfg.batch_size * cfg.accumulate
    budget = TimeBudget(cfg, steps_per_epoch, fabric, 0, method.once_work, epoch_items)
    extension = None
    too_short = None
    if resume:
        ckpt = load_checkpoint(run_dir / CHECKPOINT)
        method.load_state_dict(ckpt["method"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = TrainState(**ckpt["state"])
        if probe is not None and "probe" in ckpt:
            probe.load_state_dict(ckpt["probe"])
        if monitor is not None and "monitor" in ckpt:
            monitor.load_state_dict(ckpt["monitor"])
        # The plan follows the options now given (a larger --epochs or --time-budget
        # extends the run); a time budget is planned at the pace the run had.
        budget.first_step = state.step
        finished = state.step >= state.total_steps
        cut = state.cut_at if finished else 0
        if cut:  # planned as going on with the epoch the end cut short, where it stopped
            state.epoch, state.batch_in_epoch = state.epoch - 1, cut
        planned = budget.plan(state)
        if finished and planned > state.total_steps:
            extension = (state.total_steps, planned)
            state.cut_at = 0
        elif cut:  # not extended: the run stays as it ended
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        capped = planned_steps(cfg, steps_per_epoch) <= state.total_steps  # --epochs, --steps
        if finished and extension is None and cfg.time_budget is not None and not capped:
            too_short = unextended_warning(cfg, state, steps_per_epoch)
        if "rng" in ckpt and state.batch_in_epoch > 0:  # a mid-epoch checkpoint
            _restore_rng(ckpt["rng"])
        state.total_steps = planned
    # Channels-last memory runs convolutions about a third faster on CPU (oneDNN).
    method = method.to(memory_format=torch.channels_last)
    model, optimizer = fabric.setup(torch.compile(method) if cfg.compile else method, optimizer)
    log, epoch_log = None, None
    if rank == 0:
        log = MetricsLog(run_dir, resume_step=state.step if resume else None)
        epoch_log = MetricsLog(run_dir, state.step if resume else None, filename=EPOCHS_FILE)
    progress = TrainingProgress(
        min(state.total_steps, 10**9) if cfg.time_budget is None else steps_per_epoch,
        f"{method.name} on {source.name}",
        enabled=show_progress and rank == 0,
        completed=state.step,
        log_file=run_dir / LOG_FILE if rank == 0 else None,
    )
    progress.remaining = lambda: budget.remaining(state)
    training = Training(
        method=method,
        model=model,
        optimizer=optimizer,
        views=views.to(fabric.device),
        peak_lr=lr,
        warmup_wanted=int(cfg.warmup_epochs * steps_per_epoch),
        constant=cfg.schedule == "constant",
        steps_per_epoch=steps_per_epoch,
        budget=budget,
        progress=progress,
        probe=probe,
        probe_labels=codes if probe is not None else None,
        monitor=monitor,
        log=log,
        epoch_log=epoch_log,
        accumulate=cfg.accumulate,
        stop=StopRequests(announce=rank == 0),
    )
    training.warmup_steps = min(training.warmup_wanted, state.total_steps // 10)
    training.last_checkpoint = time.perf_counter()
    if too_short is not None:
        progress.note(f"[bold red]warning[/bold red]: {too_short}")
    if extension is not None:
        where = (
            f"; epoch {state.epoch + 1} goes on from batch {state.batch_in_epoch + 1:,} of "
            f"{steps_per_epoch:,}, where the run's end cut it"
            if state.batch_in_epoch
            else ""
        )
        progress.note(
            f"extending the finished run from {extension[0]} to {state.total_steps} steps: the "
            f"{cfg.schedule} schedule is recomputed over {state.total_steps} steps, so the "
            f"learning rate goes from its end value to {training.lr_at(state):.3g} at step "
            f"{state.step} (no new warmup){where}"
        )
    return training, state


def _rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """The random generators' states (all augmentations and masks draw from torch's)."""
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_rng(state: dict[str, torch.Tensor | list[torch.Tensor]]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training(t: Training, state: TrainState, run_dir: Path) -> None:
    """Write the checkpoint (method, optimizer, state, random generators, probe, monitor)
    and the run's encoder file beside it, so a killed run leaves a trained encoder; rank 0
    only. The time it takes is counted in ``state.checkpoint_seconds``."""
    started = time.perf_counter()
    t.method.export_encoder().save(run_dir)
    extra = {"probe": t.probe.state_dict()} if t.probe is not None else {}
    if t.monitor is not None:
        extra["monitor"] = t.monitor.state_dict()
    save_checkpoint(
        run_dir / CHECKPOINT,
        {
            "method": t.method.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "state": asdict(state),
            "rng": _rng_state(),
            **extra,
        },
    )
    t.last_checkpoint = time.perf_counter()
    state.checkpoint_seconds += t.last_checkpoint - started


#: Devices whose steps' losses the loop reads at once: a CPU runs each operation as it is
#: called, so reading later overlaps nothing and would only delay the progress line and a NaN
#: by a step. Elsewhere the loss is read after the next step is queued.
READ_AT_ONCE = frozenset({"cpu"})


@dataclass
class _UnreadStep:
    """A step whose loss the loop has not read yet, and what its row of metrics says."""

    loss: torch.Tensor
    step: int
    epoch: int
    items: int
    lr: float
    train_seconds: float


def train_one_epoch(
    t: Training,
    state: TrainState,
    source: Source,
    cfg: PretrainConfig,
    run_dir: Path,
    fabric: lightning.Fabric,
    reader: EpochReader,
    memory: StepMemory | None = None,
) -> float:
    """Train on this process's batches of ``state.epoch``, read by ``reader``, until it ends
    or the planned steps are done; return the last loss. ``memory`` is told of each step
    (see :func:`~selfsup.core.memory.steps_reuse_memory`)."""
    world, rank = fabric.world_size, fabric.global_rank
    if state.batch_in_epoch == 0:
        # Seeding from (seed, epoch, rank) makes augmentations repeat exactly on --resume;
        # a mid-epoch checkpoint restored the generators' states instead.
        torch.manual_seed(cfg.seed * 1_000_003 + state.epoch * 1009 + rank)
    step_items = cfg.batch_size * cfg.accumulate  # one optimizer step's items, this process
    batches = epoch_batches(
        source, step_items, world, rank, cfg.seed, state.epoch, bool(cfg.group_by_length)
    )
    loader = reader.epoch(batches[state.batch_in_epoch :])
    t.model.train()
    window_loss, window_steps, window_items = 0.0, 0, 0
    window_start = time.perf_counter()
    last_loss = float("nan")
    # The last step's loss, not read yet, with what its row of metrics needs: on a GPU read
    # once the next step is queued, so the device never waits for the host in between.
    unread: _UnreadStep | None = None
    checkpoint_every = cfg.checkpoint_every * 60
    # Training time runs from one step's end to the next: the wait for a batch is part of it.
    ready = time.perf_counter()

    def read_loss() -> None:
        """Read the unread step's loss; count it, and write its row of metrics if due."""
        nonlocal unread, last_loss, window_loss, window_steps, window_items, window_start
        if unread is None:
            return
        done, unread = unread, None
        last_loss = finite_loss(done.loss, done.step, done.epoch)
        window_loss, window_steps = window_loss + last_loss, window_steps + 1
        window_items += done.items
        t.progress.advance(1, done.items, last_loss)
        if t.log is not None and (done.step + 1) % cfg.log_every == 0:
            now = time.perf_counter()
            t.log.write(
                done.step + 1,
                epoch=done.epoch,
                loss=window_loss / window_steps,
                lr=done.lr,
                items_per_s=window_items / (now - window_start),
                train_seconds=done.train_seconds,
            )
            window_loss, window_steps, window_items, window_start = 0.0, 0, 0, now

    for batch in loader:
        if state.step >= state.total_steps:
            break
        state.batch_in_epoch += 1
        _record_skipped(run_dir, source, batch, cfg.strict)
        if len(batch.indices) < 2:  # batch norm needs two items
            continue
        labels = None
        if t.probe_labels is not None:
            labels = torch.as_tensor(t.probe_labels[batch.indices], dtype=torch.long)
        loss = training_step(t, batch.items, t.lr_at(state), fabric, state, labels)
        if memory is not None:
            memory.after_step()
        lr = t.optimizer.param_groups[0]["lr"]  # as the step set it, for its row of metrics
        read_loss()
        now = time.perf_counter()
        state.train_seconds += now - ready
        ready = now
        state.step += 1
        items = len(batch.indices) * world
        state.items_seen += items
        unread = _UnreadStep(loss, state.step - 1, state.epoch, items, lr, state.train_seconds)
        if fabric.device.type in READ_AT_ONCE:
            read_loss()
        planned = t.budget.after_step(state)
        if planned is not None:
            t.replan(state, planned)
        length = t.budget.length_note(state) if rank == 0 else None
        if length is not None:
            t.progress.note(length)
        if (
            rank == 0
            and state.step < state.total_steps
            and time.perf_counter() - t.last_checkpoint >= checkpoint_every
        ):
            read_loss()  # a checkpoint keeps only weights a finite loss made
            paused = time.perf_counter()
            save_training(t, state, run_dir)
            ready = time.perf_counter()
            window_start += ready - paused
        if state.step < state.total_steps and inside_due(t, state, cfg, fabric):
            read_loss()
            paused = time.perf_counter()
            measure_inside(t, state, cfg, run_dir, fabric)
            ready = time.perf_counter()
            window_start += ready - paused
        # After the last step the run ends anyway, measured and written as a finished one.
        asked = t.stop.agreed(fabric) if state.step < state.total_steps else None
        if asked is not None:
            read_loss()  # as a checkpoint on time: only weights a finite loss made
            stop = TrainingInterrupted(state.step, state.total_steps, asked, run_dir)
            if rank == 0:
                save_training(t, state, run_dir)
                t.progress.last(str(stop))
            raise stop
    read_loss()
    return last_loss


def _measure(t: Training, state: TrainState, log: MetricsLog, inside: bool = False) -> str | None:
    """Measure, log and judge the encoder after an epoch, or ``inside`` one (see
    :func:`measure_due_inside`); a message when it must stop."""
    method, monitor, probe, progress = t.method, t.monitor, t.probe, t.progress
    values: dict[str, float] = {}
    # Epochs done: 1.25 a quarter into the second epoch (epochs.csv's ``epoch``).
    epoch: float = state.epoch
    if inside:
        epoch = round(state.epoch + state.batch_in_epoch / t.budget.steps_per_epoch, 3)
    if probe is not None and probe.steps:
        values["online_probe_train"] = probe.train_accuracy()
    elif probe is not None and state.epoch == 1 and not inside:
        progress.note(
            f"[bold red]warning[/bold red]: no online probe: {method.name} never runs its "
            "encoder on whole items while training, so the probe has nothing to learn from "
            "(`selfsup evaluate` fits a linear probe after training)"
        )
    if monitor is not None:
        started = time.perf_counter()
        with progress.phase(
            f"measuring {min(monitor.items, len(monitor.source)):,} held-out items"
        ):
            metrics, measured = monitor.measure(method, probe)
        values.update(measured)
        if probe is not None:
            probe.discard()
        state.monitor_seconds += time.perf_counter() - started
        state.measures += 1
        state.measured_at, state.measured_step = state.train_seconds, state.step
        # Inside an epoch no epoch line comes first: the line says where it stands.
        where = f"step {state.step:,} (epoch {epoch:.2f}): " if inside else "  "
        show = progress.note if inside else partial(progress.routine, always=progress.shown_last)
        show(
            f"{where}held-out: RankMe {metrics.rankme:.1f}/{metrics.dim}, alpha-ReQ "
            f"{metrics.alpha_req:.2f}, normalized std {metrics.normalized_std:.2f}, neighbour "
            f"agreement {metrics.neighbour_agreement:.2f}"
            + (f", online probe {values['online_probe']:.3f}" if "online_probe" in values else "")
            + (
                f" (on its {values['online_probe_items']:.0f} labelled items)"
                if "online_probe_items" in values
                else ""
            )
            + (
                f" (the most common class alone: {values['online_probe_majority']:.3f})"
                if "online_probe_majority" in values
                else ""
            )
            + (
                f", kNN {values['labelled_knn']:.3f}"
                + (
                    f" ({monitor.start_knn:.3f} before training)"
                    if monitor.start_knn is not None
                    else ""
                )
                + f" on the {values['labelled_knn_items']:,.0f} labelled training items "
                f"({monitor.voted_by})"
                if "labelled_knn" in values
                else ""
            )
            + (f", loss {values['heldout_loss']:.4f}" if "heldout_loss" in values else ""),
        )
        if monitor.consider(method.export_encoder(), values, epoch):
            kept = f"step {state.step:,} (epoch {epoch:.2f})" if inside else f"epoch {epoch}"
            show(f"  best {monitor.what} so far: kept {kept}")
        try:
            warning = monitor.alarm(values, epoch)
        except CollapseError as err:
            log.write(state.step, epoch=epoch, **values)
            return str(err)
        if warning:
            progress.note(f"[bold red]warning[/bold red]: {warning}")
    if values:
        log.write(state.step, epoch=epoch, **values)
    return None


def measure_inside(
    t: Training, state: TrainState, cfg: PretrainConfig, run_dir: Path, fabric: lightning.Fabric
) -> None:
    """Measure the encoder inside a long epoch (rank 0), as :func:`end_epoch` does after
    one: log it, keep the best weights, raise the collapse alarm, stop early (``--patience``,
    the epoch is cut here) on every process together; a time budget is planned again with
    the time it took.

    Raises:
        CollapseError: the embeddings collapsed and ``cfg.stop_on_collapse`` is set.
    """
    collapse, stop = None, False
    if fabric.global_rank == 0:
        collapse = _measure(t, state, t.epoch_log, inside=True)
        stop = t.monitor is not None and t.monitor.exhausted()
        if collapse is not None:
            save_training(t, state, run_dir)
    t.model.train()
    collapse = fabric.broadcast(collapse, src=0)
    if collapse is not None:
        raise CollapseError(collapse)
    if fabric.broadcast(stop, src=0):
        monitor = t.monitor
        if monitor is not None:
            t.progress.note(
                f"stopped early at step {state.step:,}: the {monitor.what} on the held-out "
                f"items has not improved for {monitor.stale} measurements since epoch "
                f"{monitor.best_epoch} (--patience {monitor.patience}), whose encoder is kept"
            )
        t.replan(state, state.step)
    elif cfg.time_budget is not None:
        t.replan(state, t.budget.plan(state))


def inside_due(
    t: Training, state: TrainState, cfg: PretrainConfig, fabric: lightning.Fabric
) -> bool:
    """Whether to measure now inside the epoch (:func:`measure_due_inside`), the same on
    every process: rank 0 decides, every ``log_every`` steps under DDP (a broadcast)."""
    if t.monitor is None or cfg.measure_every == 0:
        return False
    if fabric.world_size > 1 and state.step % cfg.log_every:
        return False
    due = False
    if fabric.global_rank == 0:
        cost = (
            state.monitor_seconds / state.measures if state.measures else t.budget.measure_seconds
        )
        due = measure_due_inside(state, cfg, t.budget.steps_per_epoch, cost)
    if fabric.world_size > 1:
        due = bool(fabric.broadcast(due, src=0))
    return due


def end_epoch(
    t: Training,
    state: TrainState,
    cfg: PretrainConfig,
    run_dir: Path,
    fabric: lightning.Fabric,
    last_loss: float,
) -> None:
    """Count the epoch, refine the plan, measure (rank 0), checkpoint, and stop every process
    together when rank 0's monitor saw a collapse.

    Raises:
        CollapseError: the embeddings collapsed and ``cfg.stop_on_collapse`` is set.
    """
    # An epoch the plan cut short ends the run: a later plan a step longer (the pace's noise)
    # would open an epoch of a step or two, each with its own measurement and checkpoint.
    cut_short = state.step >= state.total_steps and state.batch_in_epoch < t.budget.steps_per_epoch
    state.cut_at = state.batch_in_epoch if cut_short else 0
    state.epoch += 1
    state.batch_in_epoch = 0
    t.replan(state, state.step if cut_short else t.budget.plan(state))
    done = state.step >= state.total_steps
    t.progress.routine(
        f"epoch {state.epoch}: step {state.step}/{state.total_steps}, loss {last_loss:.4f}, "
        f"{state.items_seen / max(state.train_seconds, 1e-9):,.0f} items/s, "
        f"{state.train_seconds:.0f} s of training",
        always=state.epoch == 1 or done,
    )
    collapse = None
    stop = False
    # Not again where a measurement inside the epoch was made at its last step (--patience).
    if fabric.global_rank == 0 and state.measured_step != state.step and monitor_due(state):
        collapse = _measure(t, state, t.epoch_log)
        stop = t.monitor is not None and t.monitor.exhausted()
    if fabric.broadcast(stop, src=0) and not done:  # early stopping (--patience)
        monitor = t.monitor
        if monitor is not None:  # rank 0 says why
            t.progress.note(
                f"stopped early after epoch {state.epoch}: the {monitor.what} on the held-out "
                f"items has not improved for {monitor.stale} measurements since epoch "
                f"{monitor.best_epoch} (--patience {monitor.patience}), whose encoder is kept"
            )
        t.replan(state, state.step)
        done = True
    if fabric.global_rank == 0:
        if cfg.keep_checkpoints:
            path = run_dir / "checkpoints" / _epoch_file(state.epoch)
            save_encoder_weights(t.method.export_encoder(), path)
        since = time.perf_counter() - t.last_checkpoint
        if done or collapse or since >= min(EPOCH_CHECKPOINT_GAP, cfg.checkpoint_every * 60):
            save_training(t, state, run_dir)
    collapse = fabric.broadcast(collapse, src=0)
    if collapse is not None:
        raise CollapseError(collapse)
    fabric.barrier()


def fill_method(
    t: Training, state: TrainState, source: Source, cfg: PretrainConfig, fabric: lightning.Fabric
) -> None:
    """Before the first step, give the method the views of the items it asks for (MSF's
    memory bank: the first epoch's first items); a time budget pays for it, but the pace of
    the steps (which plans how many fit) leaves it out."""
    wanted = t.method.fill_items()
    if wanted <= 0:
        return
    step_items = cfg.batch_size * cfg.accumulate  # as train_one_epoch cuts the first epoch
    batches = epoch_batches(
        source,
        step_items,
        fabric.world_size,
        fabric.global_rank,
        cfg.seed,
        0,
        bool(cfg.group_by_length),
    )
    per_step = step_items * fabric.world_size
    needed = min(len(batches), -(-wanted // per_step))

    # The same items, read in batches of like length (texts pad less: a teacher reads them
    # faster); which batch an item is read in changes nothing of what is kept.
    rows = by_length(source, np.concatenate(batches[:needed])) if needed else []

    # A time budget gives the fill at most a share of it: 16,384 windows of long documents
    # took a pretrained MiniLM 168 s, where the run was given one minute. (One process only:
    # processes stopping at different batches would leave the others in a gather.)
    limit = None
    if cfg.time_budget is not None and fabric.world_size == 1:
        limit = cfg.time_budget * 60 * FILL_SHARE
    cut_short = False

    def views() -> Iterator[torch.Tensor]:
        nonlocal cut_short
        for start in range(0, len(rows), cfg.batch_size):
            if limit is not None and start and time.perf_counter() - begun > limit:
                cut_short = True
                return
            batch = source.read_batch(rows[start : start + cfg.batch_size].tolist())
            if len(batch.indices):
                yield t.views(batch.items.to(fabric.device))[-1]

    begun = time.perf_counter()
    what = f"filling the memory bank: embedding up to {needed * per_step:,} items to start from"
    with t.progress.phase(what):
        t.method.eval()
        with fabric.autocast():  # the precision the steps compute their targets in
            read = t.method.fill(views())
        t.method.train()
    seconds = time.perf_counter() - begun
    state.fill_seconds += seconds
    t.progress.note(
        f"{t.method.name}: memory bank filled with the target's embeddings of {read:,} items "
        f"in {seconds:.0f} s"
        + (
            f" (a {FILL_SHARE:.0%} share of the {cfg.time_budget:g}-minute --time-budget; "
            "each step's targets go on filling it)"
            if cut_short
            else ""
        )
    )


def measure_start(t: Training, state: TrainState, monitor: EpochMonitor) -> None:
    """Before the first step, the method's loss on the held-out items (where it has one):
    the figure later epochs compare with, and the teacher's targets of those items computed
    once (distillation keeps them), so that each epoch's measurement costs only the
    student's forward passes. Paid from a time budget like a fill, left out of the pace.
    With a few labelled items, their kNN vote with the starting weights too: what the later
    ones are read against."""
    if monitor.labelled is not None:
        begun = time.perf_counter()
        with t.progress.phase("voting the labelled items with the starting weights"):
            voted = monitor.labelled_knn(t.method)
        t.method.train()
        state.fill_seconds += time.perf_counter() - begun
        if voted is not None:
            monitor.start_knn = voted[0]
            t.progress.note(
                f"kNN before training: {voted[0]:.3f} on the {voted[1]:,.0f} labelled "
                f"training items ({monitor.voted_by})"
            )
    if monitor.loss_views is None:  # given only for methods that have a held-out loss
        return
    begun = time.perf_counter()
    with t.progress.phase("measuring the held-out loss of the starting weights"):
        monitor.start_loss = monitor.heldout_loss(t.method)
    t.method.train()
    seconds = time.perf_counter() - begun
    state.fill_seconds += seconds
    if monitor.start_loss is not None:
        t.progress.note(
            f"held-out loss before training: {monitor.start_loss:.4f} "
            f"({min(monitor.items, len(monitor.source)):,} items, {seconds:.0f} s)"
        )


def plan_measurement(t: Training, state: TrainState, monitor: EpochMonitor, minutes: float) -> None:
    """Before the first step of a run with a time budget, what the monitor's measurement
    will take, timed on a few held-out items: the last one is paid from the budget before it
    is made (a year of pump-days: 438 days, 40 s; DINO adapting a ViT-S on photos: 200
    photos, 50 s, where a guess from the pace of training steps said 106 s and left out a
    step). Paid from the budget like a fill; nothing when a measurement was made already
    (a resumed run plans at its cost)."""
    if state.measures:
        return
    begun = time.perf_counter()
    with t.progress.phase("timing the held-out measurement"):
        estimate = monitor.estimate_seconds(t.method)
    t.method.train()
    measured = min(monitor.items, len(monitor.source))
    allowed = minutes * 60 * MEASURE_SHARE
    if estimate > allowed and measured > MIN_MEASURED:
        # Fewer items measured, not fewer steps: 2,048 windows of 126 tokens took MiniLM
        # 75 s, and left a 2-minute run one step.
        items = max(MIN_MEASURED, int(measured * allowed / estimate))
        monitor.items = state.measured_items = items
        t.progress.note(
            f"held-out measurement: {items:,} of the {measured:,} items held out, as all would "
            f"take about {estimate:.0f} s of the {minutes:g}-minute --time-budget at every "
            "measurement (a longer --time-budget measures all)"
        )
        estimate *= items / measured
    t.budget.measure_seconds = estimate
    state.fill_seconds += time.perf_counter() - begun


def fit(
    method: Method,
    source: Source,
    views: nn.Module,
    cfg: PretrainConfig,
    run_dir: str | os.PathLike,
    fabric: lightning.Fabric,
    resume: bool = False,
    show_progress: bool = True,
    monitor: EpochMonitor | None = None,
    notes: Sequence[str] = (),
) -> TrainState:
    """Train ``method`` on ``source`` as ``cfg`` says, checkpointing into ``run_dir``.

    Args:
        method: the objective with its encoder (unwrapped; Fabric wraps it here).
        source: the training items.
        views: makes the list of augmented views from a batch of items.
        cfg: the run's configuration.
        run_dir: the run folder.
        fabric: a launched Fabric (single process, DDP, or multi-node).
        resume: continue from ``run_dir/checkpoints/last.ckpt``.
        show_progress: draw the progress bar on rank 0.
        monitor: measures label-free metrics after every epoch (and inside long ones,
            ``cfg.measure_every``) on held-out items (rank 0),
            raises the collapse alarm and keeps the best epoch's encoder.
        notes: lines shown already (opening the data, the memory plan), for the log.

    Raises:
        CollapseError: the embeddings collapsed and ``cfg.stop_on_collapse`` is set.

    Returns:
        The final training state (steps, epochs, training seconds, items seen).
    """
    run_dir = Path(run_dir)
    t, state = setup(method, source, views, cfg, run_dir, fabric, resume, show_progress, monitor)
    if cfg.keep_checkpoints and not resume and fabric.global_rank == 0:  # epoch 0: the start
        save_encoder_weights(method.export_encoder(), run_dir / "checkpoints" / _epoch_file(0))
    # Images, tables, windows: every batch the same size (texts vary: see the function).
    with (
        t.progress,
        steps_reuse_memory(not source.varies_in_length()) as memory,
        t.stop,
        EpochReader(source, cfg.num_workers or 0, fabric.device, cfg.seed) as reader,
    ):
        for line in notes:
            t.progress.log(line)
        if not resume and state.total_steps < FEW_STEPS:
            t.progress.note(few_steps_warning(state.total_steps, len(source), cfg.batch_size))
        if not resume:
            fill_method(t, state, source, cfg, fabric)
        if monitor is not None and state.measured_items:  # as planned before a resume
            monitor.items = state.measured_items
        if cfg.time_budget is not None and monitor is not None and fabric.global_rank == 0:
            plan_measurement(t, state, monitor, cfg.time_budget)
        if not resume and monitor is not None and fabric.global_rank == 0:
            measure_start(t, state, monitor)
        fabric.barrier()
        while state.step < state.total_steps:
            last_loss = train_one_epoch(t, state, source, cfg, run_dir, fabric, reader, memory)
            end_epoch(t, state, cfg, run_dir, fabric, last_loss)
        if cfg.time_budget is not None and 0 < state.step < FEW_STEPS:
            t.progress.note(budget_steps_warning(state, cfg))
    if t.probe is not None:
        t.probe.remove()
    if t.log is not None:
        t.log.close()
        t.epoch_log.close()
        met = {
            **source.known_unreadable(),
            **source.unreadable,
            **(monitor.source.unreadable if monitor else {}),
        }
        skipped = write_skipped(run_dir, met)
        if skipped and show_progress:
            t.progress.console.print(
                f"[yellow]{skipped} unreadable item{'s' if skipped > 1 else ''} skipped[/yellow]"
                f" (each listed with its reason in {run_dir / SKIPPED_FILE})",
                soft_wrap=True,
            )
        state.skipped = skipped
    return state
