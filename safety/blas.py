"""One BLAS thread per process.

xrcell's linear algebra is on tiny matrices (3x3 camera matrices, 33x4 triangulation systems,
link capsules). numpy's OpenBLAS runs even those on a pool of worker threads that then spin,
waiting for more work, for about 0.1 s after each call: measured on the 2-core reference
machine, one ``np.linalg.solve`` of a 3x3 system kept the second core busy for 0.1 s, and the
floor placement's solves raised the tracking pipeline's CPU time per camera frame from 27.7 to
50.8 ms (`bench/perception.py`), taking the core MediaPipe and the safety monitor need.
`single_threaded_blas` limits every BLAS library loaded in the process to one thread through
threadpoolctl (the limit is process-wide and stays in force). Every `xrcell` command calls it
first (`xr_server.cli.main`); `start_cell` and `PerceptionPipeline` call it too, for code that
embeds them without the CLI.
"""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_limits

_lock = threading.Lock()
_limits: threadpool_limits | None = None


def single_threaded_blas() -> None:
    """Limit the process's BLAS libraries (OpenBLAS, MKL, BLIS) to one thread. Idempotent and
    thread-safe; call it before the first linear algebra of a long-running loop."""
    global _limits
    with _lock:
        if _limits is None:
            _limits = threadpool_limits(limits=1, user_api="blas")
