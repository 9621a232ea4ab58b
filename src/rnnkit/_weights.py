"""Layer weights that cannot change behind a packed copy's back.

A recurrent layer packs its weights once for its inference calls (``rnnkit._native.WeightPack``)
and reuses the pack until the weights change. NumPy arrays have no version counter, so rnnkit keeps
one itself: a layer's weight arrays are *locked* (``flags.writeable = False``) from the moment they
exist, and every route by which rnnkit writes into them — ``set_weights`` (and so ``load_model``),
assigning ``layer.kernel = ...``, an optimizer step — goes through :func:`unlocked`, which gives the
arrays a new stamp. A pack remembers the stamps of the arrays it was made from and is remade when
they differ. Writing into a locked array any other way raises NumPy's "assignment destination is
read-only" ValueError instead of silently leaving a stale pack.

Stamps come from one counter that only grows, so an array that dies and whose ``id`` is reused by
a new array can never match an old pack.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import weakref

import numpy as np

_counter = itertools.count(1)
#: the last stamp handed out: it changes whenever any weight is locked or written by rnnkit, so a
#: pack whose layer saw this value last needs no per-array check (one attribute read per call)
epoch = 0
_lock = threading.RLock()  # re-entrant: a finalizer (_forget) may run inside a locked block
_stamps: dict[int, int] = {}  # id(array) -> stamp of its last write by rnnkit (locked arrays only)
_arrays: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()


def _forget(key: int) -> None:
    with _lock:
        if key not in _arrays:
            _stamps.pop(key, None)


def lock(array: np.ndarray) -> np.ndarray:
    """Make ``array`` (which owns its data) a locked weight: read-only, with a fresh stamp."""
    array.flags.writeable = False
    key = id(array)
    with _lock:
        if _arrays.get(key) is not array:
            _arrays[key] = array
            weakref.finalize(array, _forget, key)
        _stamps[key] = _new_stamp()
    return array


def _new_stamp() -> int:
    global epoch
    epoch = next(_counter)
    return epoch


def is_locked(array) -> bool:
    """Whether ``array`` is a weight locked by :func:`lock` (so rnnkit may unlock it to update it)."""
    return _arrays.get(id(array)) is array


def stamps(arrays) -> tuple:
    """The current stamps of ``arrays`` (None for an array that is not locked, or is being written)."""
    return tuple(_stamps.get(id(a)) if _arrays.get(id(a)) is a else None for a in arrays)


@contextlib.contextmanager
def unlocked(arrays):
    """Let rnnkit write into the locked ``arrays`` inside the block; they get new stamps after it
    (also when the block raises: a partial write is still a change)."""
    arrays = [a for a in arrays if is_locked(a)]
    with _lock:
        for a in arrays:  # no stamp while being written: no pack is made of a half-written array
            _stamps[id(a)] = None
        _new_stamp()
    for a in arrays:
        a.flags.writeable = True
    try:
        yield
    finally:
        with _lock:
            for a in arrays:
                a.flags.writeable = False
                _stamps[id(a)] = _new_stamp()


_replacements: dict = {}  # id(unpickled array) -> (weak reference to it, its owned replacement)


def owned(array: np.ndarray) -> np.ndarray:
    """``array`` made fit to be a locked weight after unpickling or copying: an array that does not own
    its data (pickle may rebuild it over an immutable bytes object, which rnnkit could then never
    write into) is replaced by an owned copy — the same copy for every caller while the original
    lives, so that the layer, a Bidirectional wrapper and an optimizer unpickled together keep sharing
    one array — and the dtype object is made NumPy's canonical one (the kernels' fast paths test it by
    identity)."""
    if array.flags.owndata:
        return _canonical_dtype(array)
    key = id(array)
    with _lock:
        entry = _replacements.get(key)
        if entry is not None and entry[0]() is array:
            return entry[1]
        copy = _canonical_dtype(np.array(array, order="C"))
        _replacements[key] = (weakref.ref(array, lambda _ref, k=key: _replacements.pop(k, None)), copy)
    return copy


def _canonical_dtype(array: np.ndarray) -> np.ndarray:
    """Give ``array`` (in place) NumPy's canonical object for its dtype when it holds an equal one."""
    if array.dtype.isnative:
        canonical = np.dtype(array.dtype.name)
        if array.dtype is not canonical and array.dtype == canonical:
            array.dtype = canonical
    return array
