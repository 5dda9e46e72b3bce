"""``@kernel``: numba's ``njit``, deferred to the first call, or the ahead-of-time build of the kernel.

Importing numba and initialising its CPU target costs ~0.4 s per process: more than a warm
``cli default`` spends evaluating and searching. So kernels are declared with ``@kernel`` instead
of ``@njit``; the decorator only records the Python function (and, for an *entry* kernel, one called
from Python, its one argument signature) and imports nothing. On its first call a kernel binds to

- the ahead-of-time compiled function (``servopt_kernels.aot``) when an AOT module is active and the
  call's arguments have exactly the declared types (checked on every call, in microseconds), or
- a numba dispatcher, created then: numba is imported on demand and every kernel global of every
  kernel module is swapped for its dispatcher first (``materialize``), because numba resolves
  kernel-to-kernel calls by looking the callee up in the caller's module globals at compile time.

Signatures use numba's spelling (``float64[::1]`` is a C-contiguous 1-D float64 array,
``int64[:, ::1]`` a C-contiguous 2-D one), so the same strings type the AOT exports.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from servopt_kernels.config import FASTMATH

# Every kernel, by module, in declaration order; materialize() swaps them all at once.
_KERNELS: dict[str, list[Kernel]] = {}
# The active ahead-of-time module (None: every kernel runs through numba).
_aot_module = None
# Calls an active AOT module could not serve (argument types differ from the declared signature):
# a deterministic counter the tests pin to zero for the CLI's own calls.
aot_misses: dict[str, int] = {}

# Python values an AOT export converts exactly as numba would type them (np.float64 is a float).
_SCALARS = {
    "int64": (int, np.int64),
    "float64": (float,),
    "boolean": (bool, np.bool_),
}
_ARRAY = re.compile(r"^(\w+)\[([:, 1]+)\]$")


@dataclass(frozen=True)
class _ArgType:
    """An argument's expected type: a scalar kind, or an array's dtype and number of dimensions."""

    scalar: tuple | None
    dtype: np.dtype | None
    ndim: int

    def matches(self, value) -> bool:
        if self.scalar is not None:
            return isinstance(value, self.scalar) and (self.scalar is _SCALARS["boolean"]) == isinstance(
                value, (bool, np.bool_)
            )
        return (
            isinstance(value, np.ndarray)
            and value.dtype == self.dtype
            and value.ndim == self.ndim
            and value.flags.c_contiguous
            and value.flags.writeable
        )


def parse_arg(spelling: str) -> _ArgType:
    """``int64`` / ``float64`` / ``boolean`` or a C-contiguous array ``<dtype>[:, ..., ::1]``."""
    if spelling in _SCALARS:
        return _ArgType(_SCALARS[spelling], None, 0)
    m = _ARRAY.match(spelling.replace(" ", ""))
    if m is None or not m.group(2).endswith("::1"):
        raise ValueError(
            f"kernel signatures take int64, float64, boolean or C-contiguous arrays: {spelling!r}"
        )
    dtype = np.dtype("bool" if m.group(1) == "boolean" else m.group(1))
    return _ArgType(None, dtype, m.group(2).count(":") - 1)


class Kernel:
    """A deferred ``njit(cache=True, fastmath=FASTMATH)`` function; see the module docstring."""

    def __init__(
        self,
        py_func: Callable,
        returns: str | None,
        args: tuple[str, ...] | None,
        options: dict | None = None,
    ) -> None:
        self.py_func = py_func
        self.options = dict(options or {})
        self.__name__ = py_func.__name__
        self.__doc__ = py_func.__doc__
        self.__module__ = py_func.__module__
        self.__wrapped__ = py_func
        self.returns = returns
        self.args = args
        self._arg_types = tuple(parse_arg(a) for a in args) if args is not None else None
        self._dispatcher = None
        self._aot = None
        _KERNELS.setdefault(py_func.__module__, []).append(self)

    @property
    def export_name(self) -> str:
        return f"{self.__module__.rsplit('.', 1)[-1]}__{self.__name__}"

    @property
    def signature(self) -> str | None:
        """numba's signature string of an entry kernel (None: only called from other kernels)."""
        if self.args is None:
            return None
        return f"{self.returns}({', '.join(self.args)})"

    def __call__(self, *args, **kwargs):
        if kwargs:  # the AOT exports are positional; numba's dispatcher takes keywords
            return self._jit_call(args, kwargs)
        aot = self._aot
        if aot is None and _aot_module is not None and self._arg_types is not None:
            aot = self._aot = getattr(_aot_module, self.export_name, None)
        if aot is not None:
            types = self._arg_types
            if len(args) == len(types) and all(t.matches(a) for t, a in zip(types, args, strict=True)):
                return aot(*args)
            aot_misses[self.export_name] = aot_misses.get(self.export_name, 0) + 1
        return self._jit_call(args, {})

    def _jit_call(self, args: tuple, kwargs: dict):
        try:
            return self.dispatcher(*args, **kwargs)
        except Exception as err:
            if not _from_damaged_cache(err):
                raise
            _forget_numba_cache(err)
        return self.dispatcher(*args, **kwargs)

    @property
    def dispatcher(self):
        """The numba dispatcher (created, with every other kernel's, on first use)."""
        if self._dispatcher is None:
            materialize()
        return self._dispatcher

    def __getattr__(self, name: str):
        # Dispatcher attributes (signatures, overloads, py_func...) for tests and tools.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.dispatcher, name)

    def __repr__(self) -> str:
        return f"<kernel {self.__module__}.{self.__name__}>"


def kernel(
    func: Callable | None = None, *, returns: str = "none", args: tuple[str, ...] | None = None, **options
):
    """Declare a kernel: ``@kernel`` (called from kernels only) or ``@kernel(returns=..., args=(...))``
    (an entry kernel: its one signature, also the AOT export's). Other keywords go to ``njit``
    (e.g. ``inline="always"``)."""
    if func is not None:
        return Kernel(func, None, None)
    return lambda f: Kernel(
        f, returns if args is not None else None, tuple(args) if args is not None else None, options
    )


def materialize() -> None:
    """Create every kernel's numba dispatcher and put it in place of the kernel in module globals."""
    from numba import njit

    for kernels in _KERNELS.values():
        for k in kernels:
            if k._dispatcher is None:
                options = {"cache": True, "fastmath": set(FASTMATH), **k.options}
                k._dispatcher = njit(**options)(k.py_func)
    for module_name in _KERNELS:
        namespace = vars(sys.modules[module_name])
        for name, value in list(namespace.items()):
            if isinstance(value, Kernel):
                namespace[name] = value._dispatcher


# What unpickling a truncated or garbage numba cache file (index or data) raises. numba stores no
# checksum, so these are the damage it can notice; the files are then forgotten, not retried.
_CACHE_DAMAGE = (pickle.UnpicklingError, EOFError)


def _from_damaged_cache(err: BaseException) -> bool:
    seen = 0
    while err is not None and seen < 16:
        if isinstance(err, _CACHE_DAMAGE):
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _forget_numba_cache(err: BaseException) -> None:
    """Remove the kernel modules' numba cache files (index and data) from every folder numba keeps
    them in, so that the kernels compile afresh and save a sound cache; one warning line."""
    # Every module of this package, imported yet or not: their cache files share the folder.
    package = os.path.dirname(os.path.abspath(__file__))
    stems = tuple(n[: -len(".py")] + "." for n in os.listdir(package) if n.endswith(".py"))
    folders = set()
    for kernels in _KERNELS.values():
        for k in kernels:
            folder = getattr(getattr(k._dispatcher, "_cache", None), "_cache_path", None)
            if folder:
                folders.add(folder)
    for folder in folders:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.endswith((".nbi", ".nbc")) and name.startswith(stems):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
    logging.getLogger("servopt.cache").warning(
        "cache: numba's kernel cache is damaged (%s: %s); cleared, compiling the kernels afresh",
        type(err).__name__,
        err,
    )


def activate_aot(module) -> None:
    """Serve entry-kernel calls from ``module`` (an AOT build) when their arguments match."""
    global _aot_module
    _aot_module = module
    for ks in _KERNELS.values():
        for k in ks:
            k._aot = None


def entry_kernels() -> list[Kernel]:
    """Every declared entry kernel of the imported kernel modules, in a stable order."""
    return [k for name in sorted(_KERNELS) for k in _KERNELS[name] if k.args is not None]
