"""Learning-rate schedules (Keras 3's ``keras.optimizers.schedules``, same formulas and arguments).

A schedule maps the optimizer's step counter to a learning rate: ``schedule(step) -> float``. Pass
one wherever a learning rate is accepted (``Adam(learning_rate=ExponentialDecay(...))``); the
optimizer evaluates it at ``iterations`` (0 for the first update) before each update, and
``optimizer.learning_rate`` reads the value the next update will use. Such an optimizer's learning
rate cannot be assigned (TypeError, as in Keras): callbacks that change the rate
(ReduceLROnPlateau, LearningRateScheduler) need a float learning rate.

With ``s`` the step, ``lr0`` the initial learning rate::

    ExponentialDecay        lr0 · decay_rate ** p,          p = s / decay_steps (floor if staircase)
    InverseTimeDecay        lr0 / (1 + decay_rate · p),     p as above
    PiecewiseConstantDecay  values[0] for s <= boundaries[0], values[i] for
                            boundaries[i-1] < s <= boundaries[i], values[-1] for s > boundaries[-1]
    CosineDecay             without warmup: lr0 · ((1 - alpha) · ½(1 + cos(π · min(s, D) / D)) + alpha)
                            (D = decay_steps); with warmup_target (W = warmup_steps, s' = min(s, W + D)):
                            s' < W: lr0 + (warmup_target - lr0) · s' / W, else the decay above from
                            warmup_target at step s' - W

Keras evaluates these in float32; rnnkit in float64 (the values agree to float32 rounding).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .._config import Configurable, deserialize_from, serialized

__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "CosineDecay",
           "InverseTimeDecay", "serialize", "deserialize"]


def _real(name, value, *, positive=False, non_negative=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and v <= 0) or (non_negative and v < 0):
        rule = "> 0" if positive else ">= 0" if non_negative else "finite"
        raise ValueError(f"{name} must be finite and {rule}, got {value!r}")
    return v


def _step(step):
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Real):
        raise TypeError(f"step must be a number, got {step!r}")
    return float(step)


class LearningRateSchedule(Configurable):
    """Base class: subclasses define ``__call__(step) -> float`` and ``get_config()``."""

    def __call__(self, step):  # pragma: no cover - overridden
        raise NotImplementedError

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = object.__hash__


class _DecayBySteps(LearningRateSchedule):
    """A schedule of ``initial_learning_rate``, ``decay_rate`` and the progress
    ``step / decay_steps`` (floored with ``staircase=True``): ``_decay(p)`` says how it decays."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        self.initial_learning_rate = _real("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real("decay_steps", decay_steps, positive=True)
        self.decay_rate = _real("decay_rate", decay_rate)
        self.staircase = bool(staircase)
        self.name = type(self).__name__ if name is None else name

    def __call__(self, step):
        p = _step(step) / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self._decay(p)

    def _decay(self, p):  # pragma: no cover - overridden
        raise NotImplementedError

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_DecayBySteps):
    """``initial_learning_rate · decay_rate ** (step / decay_steps)`` (integer division of the
    exponent with ``staircase=True``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _decay(self, p):
        return self.initial_learning_rate * self.decay_rate ** p


class InverseTimeDecay(_DecayBySteps):
    """``initial_learning_rate / (1 + decay_rate · step / decay_steps)`` (the quotient floored
    with ``staircase=True``)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)

    def _decay(self, p):
        return self.initial_learning_rate / (1.0 + self.decay_rate * p)


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` up to and including ``boundaries[0]``, ``values[i]`` on
    ``(boundaries[i-1], boundaries[i]]``, ``values[-1]`` after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if not isinstance(boundaries, (list, tuple)) or not isinstance(values, (list, tuple)):
            raise TypeError(f"boundaries and values must be lists, got {type(boundaries).__name__} "
                            f"and {type(values).__name__}")
        if len(boundaries) != len(values) - 1:
            raise ValueError(f"The length of boundaries should be 1 less than the length of values. "
                             f"Received: boundaries={list(boundaries)} of length {len(boundaries)}, "
                             f"and values={list(values)} of length {len(values)}.")
        self.boundaries = [_real(f"boundaries[{i}]", b) for i, b in enumerate(boundaries)]
        if any(b1 < b0 for b0, b1 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"boundaries must be increasing, got {self.boundaries}")
        self.values = [_real(f"values[{i}]", v) for i, v in enumerate(values)]
        self.name = name

    def __call__(self, step):
        s = _step(step)
        for boundary, value in zip(self.boundaries, self.values):
            if s <= boundary:
                return value
        return self.values[-1]

    def get_config(self):
        return {"boundaries": list(self.boundaries), "values": list(self.values), "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` (or, after a linear warmup of ``warmup_steps``
    steps, from ``warmup_target``) to ``alpha`` times it over ``decay_steps`` steps, then constant."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _real("initial_learning_rate", initial_learning_rate)
        self.decay_steps = _real("decay_steps", decay_steps, positive=True)
        self.alpha = _real("alpha", alpha)
        self.name = name
        self.warmup_target = None if warmup_target is None else _real("warmup_target", warmup_target)
        self.warmup_steps = _real("warmup_steps", warmup_steps, non_negative=True)

    def _decay(self, step, decay_from):
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return decay_from * ((1.0 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        s = _step(step)
        if self.warmup_target is None:
            return self._decay(min(s, self.decay_steps), self.initial_learning_rate)
        s = min(s, self.decay_steps + self.warmup_steps)
        if s < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * s / self.warmup_steps + self.initial_learning_rate
        return self._decay(s - self.warmup_steps, self.warmup_target)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


_CLASSES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, CosineDecay,
                                          InverseTimeDecay)}


def serialize(schedule) -> dict:
    if type(schedule).__name__ not in _CLASSES or not isinstance(schedule, LearningRateSchedule):
        raise ValueError(f"cannot serialize {schedule!r}: only rnnkit's built-in schedules "
                         f"({', '.join(sorted(_CLASSES))}) can be saved")
    return serialized(schedule)


def deserialize(config) -> LearningRateSchedule:
    return deserialize_from(_CLASSES, config, "schedule")
