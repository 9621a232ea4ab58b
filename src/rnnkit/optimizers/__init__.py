"""Optimizers with Keras 3's update formulas, updating NumPy arrays in place.

``opt.apply_gradients([(grad, var), ...])`` or ``opt.apply(grads, vars)`` updates each ``var``
(a float32 or float64 ndarray) in place and increments ``opt.iterations`` once per call. A None
gradient leaves its variable alone. Slots (momentums, velocities) are created on first use of a
variable, have its shape and dtype, and are keyed by the array's identity (the optimizer keeps a
reference to every variable it has seen, so identities stay unique): ``Layer.set_weights`` copies
into the live arrays, so the slots stay attached to the right weights.

Optimizers pickle and ``copy.deepcopy``: the slots are stored in the order of ``variables`` and
re-keyed to the unpickled arrays. Pickled or copied together with its model (a compiled
``Sequential``), an optimizer's variables are the model's unpickled weight arrays, so training
continues exactly as without the round trip; pickled alone, it holds slots for copies of the arrays
(``variables``), not for the original model's weights. The per-variable gradient and work buffers
are scratch space: they are not pickled but allocated again.

Per step, for every variable (``g`` its gradient, cast to the variable's dtype, t = iterations + 1)::

    clipping (at most one of)  clipnorm:        g *= clipnorm / max(||g||, clipnorm)    (per variable)
                               global_clipnorm: g *= min(1, global_clipnorm / ||all g||) (NaN if ||.|| is not finite)
                               clipvalue:       g = clip(g, -clipvalue, clipvalue)
    SGD      momentum == 0:    var -= lr g
             otherwise:        m = momentum m - lr g;  var += m   (nesterov: var += momentum m - lr g)
    Adam                       alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t)
                               m += (g - m)(1 - beta_1);  v += (g^2 - v)(1 - beta_2)
                               amsgrad: v_hat = max(v_hat, v), used in place of v
                               var -= alpha m / (sqrt(v) + epsilon)
    RMSprop                    v = rho v + (1 - rho) g^2
                               centered: a = rho a + (1 - rho) g;  denom = v - a^2 + epsilon
                               otherwise: denom = v + epsilon
                               increment = lr g / sqrt(denom)
                               momentum > 0: m = momentum m + increment; var -= m
                               otherwise:    var -= increment

Keras 3 raises if more than one of clipnorm / clipvalue / global_clipnorm is set; so does rnnkit.
``learning_rate`` may be a schedule (``rnnkit.optimizers.schedules``): each update then uses
``schedule(iterations)``, the step counter before the update (0 first), as in Keras; reading
``optimizer.learning_rate`` gives that value, and assigning a number to it raises TypeError.
The caller's gradient arrays are never modified: each variable has a private gradient buffer (and a
work buffer), reused every step, so a step allocates nothing proportional to the parameter count.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .. import _weights as weight_locks
from .._config import deserialize_from, serialized
from . import schedules
from .schedules import LearningRateSchedule

__all__ = ["Optimizer", "SGD", "Adam", "RMSprop", "get", "serialize", "deserialize", "schedules"]


def _check_real(name, value, *, low=None, high=None, low_open=False, high_open=False,
                allow_none=False):
    """``value`` as a float, checked against [low, high] (open ends if asked); errors name it."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    ok = math.isfinite(v)
    if ok and low is not None:
        ok = v > low if low_open else v >= low
    if ok and high is not None:
        ok = v < high if high_open else v <= high
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        rule = " and ".join(s for s in (lo, hi) if s) or "finite"
        raise ValueError(f"{name} must be finite and {rule}, got {value!r}")
    return v


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


class _Slots:
    """Per-variable state: a private gradient buffer ``g``, a work buffer ``w`` and named slots."""

    __slots__ = ("g", "w", "named")

    def __init__(self, var: np.ndarray, names, named=None):
        self.g = np.empty_like(var)
        self.w = np.empty_like(var)
        self.named = {n: np.zeros_like(var) for n in names} if named is None else named


class Optimizer:
    """Base class: validation, clipping, slots, the iteration counter and (de)serialisation.
    Subclasses define ``_slot_names`` and ``_update_step(var, g, w, slots)``."""

    _default_name = "optimizer"

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name=None):
        self.learning_rate = learning_rate  # validated by the property
        self.clipnorm = _check_real("clipnorm", clipnorm, low=0, low_open=True, allow_none=True)
        self.clipvalue = _check_real("clipvalue", clipvalue, low=0, low_open=True, allow_none=True)
        self.global_clipnorm = _check_real("global_clipnorm", global_clipnorm, low=0,
                                           low_open=True, allow_none=True)
        n_clip = sum(c is not None for c in (self.clipnorm, self.clipvalue, self.global_clipnorm))
        if n_clip > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm can be set, got "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, "
                             f"global_clipnorm={global_clipnorm}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {name!r}")
        self.name = name or self._default_name
        self.iterations = 0
        self._slots: dict[int, _Slots] = {}
        self._variables: list[np.ndarray] = []  # keeps ids unique while slots exist

    # -- pickling and copies ------------------------------------------------------------------------
    def __getstate__(self):
        """The slots keyed by identity cannot survive a round trip (the arrays get new ids): store
        the named slots as a list in the order of ``_variables`` instead, without the scratch
        buffers."""
        state = dict(self.__dict__)
        state["_slots"] = [self._slots[id(var)].named for var in self._variables]
        return state

    def __setstate__(self, state):
        state = dict(state)
        named_slots = state.pop("_slots")
        self.__dict__.update(state)
        # a shallow copy must not share the list; unpickled layer weights may have been replaced by
        # owned copies (rnnkit._weights.owned): follow them, as the layers do
        self._variables = [weight_locks.owned(v) for v in self._variables]
        if len(named_slots) != len(self._variables):
            raise ValueError(f"optimizer state holds {len(named_slots)} slot sets for "
                             f"{len(self._variables)} variables")
        self._slots = {id(var): _Slots(var, (), named)
                       for var, named in zip(self._variables, named_slots)}

    # -- hyper-parameters --------------------------------------------------------------------------
    @property
    def learning_rate(self) -> float:
        """The learning rate the next update uses (a schedule's value at ``iterations``)."""
        if isinstance(self._learning_rate, LearningRateSchedule):
            return float(self._learning_rate(self.iterations))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        # settable so that callbacks (LearningRateScheduler, ReduceLROnPlateau) can change it
        if isinstance(value, LearningRateSchedule):
            self._learning_rate = value
            return
        if isinstance(getattr(self, "_learning_rate", None), LearningRateSchedule):
            raise TypeError("This optimizer was created with a LearningRateSchedule as its "
                            "learning_rate, hence its learning rate is not settable; create the "
                            "optimizer with a float learning_rate to change it (e.g. from a callback)")
        self._learning_rate = _check_real("learning_rate", value, low=0, low_open=True)

    @property
    def schedule(self):
        """The LearningRateSchedule given as ``learning_rate``, or None."""
        lr = self._learning_rate
        return lr if isinstance(lr, LearningRateSchedule) else None

    # -- state ---------------------------------------------------------------------------------------
    @property
    def variables(self) -> list:
        """The variables this optimizer holds state for, in first-seen order."""
        return list(self._variables)

    def slots(self, var: np.ndarray) -> dict:
        """The named state arrays of ``var`` (e.g. {"momentum": ..., "velocity": ...})."""
        try:
            return self._slots[id(var)].named
        except KeyError:
            raise ValueError("var: this optimizer has no state for that array") from None

    def reset(self) -> None:
        """Forget all state (slots and the iteration counter)."""
        self.iterations = 0
        self._slots.clear()
        self._variables.clear()

    def build(self, variables) -> None:
        """Create the slots of ``variables`` now (otherwise done on their first update)."""
        for i, var in enumerate(variables):
            self._slots_of(var, i)

    def _slots_of(self, var, i) -> _Slots:
        s = self._slots.get(id(var))
        if s is None:
            if not isinstance(var, np.ndarray) or var.dtype not in (np.float32, np.float64):
                raise TypeError(f"variables[{i}] must be a float32 or float64 numpy array, got "
                                f"{type(var).__name__}"
                                f"{' of dtype ' + str(var.dtype) if isinstance(var, np.ndarray) else ''}")
            if not var.flags.writeable and not weight_locks.is_locked(var):
                raise ValueError(f"variables[{i}] must be writeable: it is updated in place")
            s = _Slots(var, self._slot_names)
            self._slots[id(var)] = s
            self._variables.append(var)
        return s

    # -- applying gradients ------------------------------------------------------------------------
    def apply_gradients(self, grads_and_vars) -> int:
        """Update each var in place from its grad; ``grads_and_vars`` is an iterable of (grad, var).
        Returns the new iteration count."""
        pairs = list(grads_and_vars)
        for i, pair in enumerate(pairs):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"grads_and_vars[{i}] must be a (grad, var) pair, got {pair!r}")
        return self.apply([p[0] for p in pairs], [p[1] for p in pairs])

    def apply(self, grads, variables=None) -> int:
        """Update ``variables[i]`` in place from ``grads[i]``; returns the new iteration count.
        Without ``variables``, the grads follow the order of ``build`` (or of first use)."""
        grads = list(grads)
        if variables is None:
            if not self._variables:
                raise ValueError("variables: pass the variables, or call build(variables) first")
            variables = self._variables
        variables = list(variables)
        if len(grads) != len(variables):
            raise ValueError(f"grads and variables must have the same length, got {len(grads)} "
                             f"and {len(variables)}")
        if len({id(v) for v in variables}) != len(variables):
            raise ValueError("variables must not contain the same array twice")
        work = []
        # 1. copy every gradient into its variable's private buffer (casting to the var dtype)
        for i, (grad, var) in enumerate(zip(grads, variables)):
            if grad is None:
                continue
            s = self._slots_of(var, i)
            grad = np.asarray(grad)
            if grad.shape != var.shape:
                raise ValueError(f"grads[{i}] must have the shape of its variable {var.shape}, "
                                 f"got {grad.shape}")
            if grad.dtype.kind not in "fiu":
                raise TypeError(f"grads[{i}] must be a numeric array, got dtype {grad.dtype}")
            np.copyto(s.g, grad, casting="unsafe")
            work.append((var, s))
        if not work:
            return self.iterations
        # 2. clip
        self._clip([s.g for _, s in work])
        # 3. update (layer weights are read-only outside rnnkit's own writes: see rnnkit._weights)
        self._lr = self.learning_rate   # once per step (a schedule's value at this iteration)
        with weight_locks.unlocked([var for var, _ in work]):
            for var, s in work:
                self._update_step(var, s.g, s.w, s.named)
        self.iterations += 1
        return self.iterations

    def _clip(self, gs) -> None:
        if self.clipnorm is not None:
            c = self.clipnorm
            for g in gs:
                norm = math.sqrt(_sum_squares(g))
                if math.isfinite(norm) and norm > c:
                    g *= c / norm
        elif self.global_clipnorm is not None:
            c = self.global_clipnorm
            norm = math.sqrt(sum(_sum_squares(g) for g in gs))
            if not math.isfinite(norm):
                # Keras: the scale becomes NaN, so a non-finite gradient poisons every update
                # instead of being silently scaled by zero.
                for g in gs:
                    g.fill(np.nan)
            elif norm > c:
                for g in gs:
                    g *= c / norm
        elif self.clipvalue is not None:
            v = self.clipvalue
            for g in gs:
                np.clip(g, -v, v, out=g)

    _slot_names: tuple = ()

    def _update_step(self, var, g, w, slots) -> None:  # pragma: no cover - overridden
        """Update ``var`` in place. ``g`` (the clipped gradient) and ``w`` are scratch arrays the
        step may overwrite."""
        raise NotImplementedError

    # -- serialisation ------------------------------------------------------------------------------
    def get_config(self) -> dict:
        lr = self._learning_rate
        if isinstance(lr, LearningRateSchedule):
            lr = schedules.serialize(lr)
        return {"name": self.name, "learning_rate": lr, "clipnorm": self.clipnorm,
                "clipvalue": self.clipvalue, "global_clipnorm": self.global_clipnorm}

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if v is not None)
        return f"{type(self).__name__}({args})"


def _sum_squares(g: np.ndarray) -> float:
    flat = g.reshape(-1)  # a view for the contiguous buffers used here
    with np.errstate(over="ignore"):  # an overflow is detected and redone below
        s = float(np.dot(flat, flat))
    if not math.isfinite(s) and np.isfinite(flat).all():
        # float32 sums of squares overflow for norms above ~1.8e19 (exploding gradients, exactly
        # when clipping matters): redo this rare case in float64
        s = float(np.dot(flat.astype(np.float64), flat.astype(np.float64)))
    return s


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, Keras 3 formulas."""

    _default_name = "SGD"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name)
        self.momentum = _check_real("momentum", momentum, low=0, high=1)
        self.nesterov = _check_bool("nesterov", nesterov)

    @property
    def _slot_names(self):
        return ("momentum",) if self.momentum != 0 else ()

    def _update_step(self, var, g, w, slots):
        g *= self._lr                                 # g <- lr g
        if self.momentum == 0:
            var -= g
            return
        m = slots["momentum"]
        m *= self.momentum
        m -= g                                         # m = momentum m - lr g
        if self.nesterov:
            np.multiply(m, self.momentum, out=w)
            w -= g
            var += w                                   # var += momentum m - lr g
        else:
            var += m

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba), Keras 3 formulas (epsilon outside the square root, bias correction folded
    into the step size), optional AMSGrad."""

    _default_name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name)
        self.beta_1 = _check_real("beta_1", beta_1, low=0, high=1, high_open=True)
        self.beta_2 = _check_real("beta_2", beta_2, low=0, high=1, high_open=True)
        self.epsilon = _check_real("epsilon", epsilon, low=0, low_open=True)
        self.amsgrad = _check_bool("amsgrad", amsgrad)

    @property
    def _slot_names(self):
        return ("momentum", "velocity") + (("velocity_hat",) if self.amsgrad else ())

    def _update_step(self, var, g, w, slots):
        t = self.iterations + 1
        alpha = self._lr * math.sqrt(1 - self.beta_2 ** t) / (1 - self.beta_1 ** t)
        m, v = slots["momentum"], slots["velocity"]
        np.subtract(g, m, out=w)
        w *= 1 - self.beta_1
        m += w                                         # m += (g - m)(1 - beta_1)
        np.multiply(g, g, out=w)
        w -= v
        w *= 1 - self.beta_2
        v += w                                         # v += (g^2 - v)(1 - beta_2)
        if self.amsgrad:
            v_hat = slots["velocity_hat"]
            np.maximum(v_hat, v, out=v_hat)
            v = v_hat
        np.sqrt(v, out=w)
        w += self.epsilon
        np.multiply(m, alpha, out=g)
        g /= w
        var -= g                                       # var -= alpha m / (sqrt(v) + epsilon)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": self.amsgrad}


class RMSprop(Optimizer):
    """RMSprop (Hinton), Keras 3 formulas: plain momentum, optional centering."""

    _default_name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name=None):
        super().__init__(learning_rate, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, name=name)
        self.rho = _check_real("rho", rho, low=0, high=1, high_open=True)
        self.momentum = _check_real("momentum", momentum, low=0, high=1)
        self.epsilon = _check_real("epsilon", epsilon, low=0, low_open=True)
        self.centered = _check_bool("centered", centered)

    @property
    def _slot_names(self):
        return (("velocity",) + (("momentum",) if self.momentum > 0 else ())
                + (("average_gradient",) if self.centered else ()))

    def _update_step(self, var, g, w, slots):
        rho = self.rho
        v = slots["velocity"]
        v *= rho
        np.multiply(g, g, out=w)
        w *= 1 - rho
        v += w                                         # v = rho v + (1 - rho) g^2
        if self.centered:
            a = slots["average_gradient"]
            a *= rho
            np.multiply(g, 1 - rho, out=w)
            a += w                                     # a = rho a + (1 - rho) g
            np.multiply(a, a, out=w)
            np.subtract(v, w, out=w)
            # v >= a^2 in exact arithmetic; rounding must not make the square root NaN
            np.maximum(w, 0, out=w)
            w += self.epsilon                          # denom = v - a^2 + epsilon
        else:
            np.add(v, self.epsilon, out=w)             # denom = v + epsilon
        np.sqrt(w, out=w)
        g *= self._lr
        g /= w                                         # increment = lr g / sqrt(denom)
        if self.momentum > 0:
            m = slots["momentum"]
            m *= self.momentum
            m += g
            var -= m
        else:
            var -= g

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


# -- lookup and serialisation ------------------------------------------------------------------------

_CLASSES = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}
_BY_NAME = {k.lower(): v for k, v in _CLASSES.items()}


def get(identifier) -> Optimizer:
    """An optimizer from a name ("sgd", "adam", "rmsprop", case-insensitive; default settings),
    an Optimizer instance (returned as is), a class, or a ``serialize`` dict."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_NAME.get(identifier.strip().lower())
        if cls is None:
            raise ValueError(f"optimizer must be one of {sorted(_BY_NAME)} (case-insensitive), "
                             f"got {identifier!r}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    raise TypeError(f"optimizer must be a name, an rnnkit.optimizers.Optimizer or a serialized "
                    f"dict, got {identifier!r}")


def serialize(optimizer) -> dict:
    return serialized(get(optimizer))


def deserialize(config: dict) -> Optimizer:
    return deserialize_from(_CLASSES, config, "optimizer")
