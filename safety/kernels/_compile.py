"""The compile-at-import machinery of `safety.kernels`: the signatures' argument types and
`_kernel`, numba's `njit` with a fixed signature, compiled now (from numba's on-disk cache when
it holds the kernel), never inside a cycle.

numba's cache tracks only the source file of the function it caches ("Cache invalidation fails
to recognize changes in functions defined in a different file", numba's documentation, *Notes
on caching*): a kernel's cached machine code keeps the code it inlined or called from another
file. So nothing compiled lives here, and each kernel module defines the small inline helpers
it uses itself (`_np_max`, `_np_min`, `_first_smaller`); a kernel calls only kernels of its own
module.
"""

from __future__ import annotations

import numba
from numba import njit, types

#: Argument types: C-contiguous, read-only accepted (a writable array converts to them); the
#: signatures are given, so numba compiles them at import and never another one in a cycle
#: (other argument types raise TypeError: a fault stop, not a stall).
_F1, _F2, _F3, _F4 = (types.Array(types.float64, n, "C", readonly=True) for n in (1, 2, 3, 4))
_I1 = types.Array(types.int64, 1, "C", readonly=True)
_F2_OUT, _F3_OUT = types.Array(types.float64, 2, "C"), types.Array(types.float64, 3, "C")
_I1_OUT, _I2_OUT = types.Array(types.int64, 1, "C"), types.Array(types.int64, 2, "C")
_F4_OUT, _B1_OUT = types.Array(types.float64, 4, "C"), types.Array(types.boolean, 1, "C")
_B2_OUT, _STATUS_OUT = types.Array(types.boolean, 2, "C"), types.Array(types.int8, 1, "C")
#: Scalar argument and result types.
_F8, _I8, _BOOL = types.float64, types.int64, types.boolean


def _cache_available() -> bool:
    """Whether numba can cache compiled kernels for this file: in `__pycache__` next to it, else
    in the user-wide cache directory (`NUMBA_CACHE_DIR` when set). Where neither is writable
    (a read-only install without a home directory) the kernels compile at every start-up
    instead (see `safety.kernels` for the cost) rather than failing to import."""
    def probe() -> None:
        pass
    try:
        njit(cache=True)(probe)
    except RuntimeError:             # numba: "cannot cache function ...: no locator available"
        return False
    return True


#: numba's on-disk cache of the compiled kernels is usable (`_cache_available`).
_CACHE = _cache_available()

def _kernel(signature):
    """`njit(signature, cache=_CACHE)`: compiled now, for this signature only, from numba's disk
    cache when it holds the kernel. numba's cache loader catches only OSError: a cache file
    that fails to unpickle (truncated, overwritten, from a disk fault) would make this module's
    import fail and the monitor never start. Such an entry is dropped (the function's cache
    index flushed) and the kernel compiled afresh, which rewrites the entry."""
    def compile_kernel(function):
        kernel = njit(cache=_CACHE)(function)    # lazy: nothing loaded or compiled yet
        if numba.config.DISABLE_JIT:            # debugging with NUMBA_DISABLE_JIT=1: plain Python
            return kernel
        try:
            kernel.compile(signature)
        except Exception:                       # noqa: BLE001 - any failure to load the entry
            if not _CACHE:
                raise
            kernel._cache.flush()               # numba 0.60 (pinned): the function's index
            kernel.compile(signature)
        kernel.disable_compile()                # as njit(signature): no other type compiles later
        return kernel
    return compile_kernel

