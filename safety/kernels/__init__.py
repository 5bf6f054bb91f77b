"""Compiled numeric kernels of the monitor cycle (numba `@njit`, ahead of the first cycle).

Each kernel is a plain loop over contiguous float64 arrays doing, value by value, the
arithmetic of the numpy code it replaces, in the same order, so its results are the same to
the last bit (IEEE 754 operations are exactly rounded; no `fastmath`, so no reassociation and
no fused multiply-add). numpy's `maximum` / `minimum` / `argmin` semantics, NaN included, are
kept by `_np_max`, `_np_min` and the explicit comparisons. No `parallel=True`: the monitor
thread must not start threads.

Compilation happens once, at import (the signatures are given, so numba compiles them eagerly,
and any other argument type raises TypeError instead of compiling inside a live cycle). The
machine code is cached on disk (numba's `cache=True`): in `__pycache__` next to each module, else
(a read-only install) in the user-wide cache directory, or under `NUMBA_CACHE_DIR` when that is
set. Where no cache directory is writable, `_CACHE` is False and every start-up compiles. On
the 2-core development machine (load 5): the first import compiles in about 8 s of CPU (11-27 s
of wall time); from the cache, the import takes about 1.5 s of CPU (2-3 s of wall time), numba's
own import included.

numba does not check indices (an index out of range reads whatever memory is there), so every
kernel first checks its arguments' shapes and index arrays against each other and raises
ValueError naming the argument (a fault stop in the cycle) instead of reading out of range.

Two modules, along the cycle's two passes: `safety.kernels.capsules` builds and checks the
people's capsules (`people_capsules`, `tracks_finite`) and tests them against the zones
(`zone_capsules`); `safety.kernels.separation` measures the separations and applies speed and
separation monitoring (`closest_pairs_per_link`, `directed_speeds`, `ssm_links`, and
`ssm_regions`, both passes of the cycle in one call; `path_progress`). `safety.kernels._compile`
holds the signatures' types and the compile-at-import decorator.

All coordinates metres in the `cell` frame; speeds m/s.
"""

from __future__ import annotations

from safety.kernels._compile import _CACHE  # noqa: F401 - whether the kernels are cached on disk
from safety.kernels.capsules import (ZONE_INSIDE, ZONE_OUTSIDE, ZONE_UNDECIDED, people_capsules,
                                     tracks_finite, zone_capsules)
from safety.kernels.separation import (closest_pairs_per_link, directed_speeds, path_progress,
                                       ssm_links, ssm_regions)

__all__ = ["ZONE_INSIDE", "ZONE_OUTSIDE", "ZONE_UNDECIDED", "closest_pairs_per_link",
           "directed_speeds", "path_progress", "people_capsules", "ssm_links", "ssm_regions",
           "tracks_finite", "zone_capsules"]
