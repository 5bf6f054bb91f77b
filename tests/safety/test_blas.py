"""`single_threaded_blas`: every BLAS library numpy loaded runs on one thread afterwards."""

import numpy as np
from threadpoolctl import threadpool_info

from safety.blas import single_threaded_blas


def test_blas_libraries_run_on_one_thread_after_the_call():
    np.linalg.solve(np.eye(3), np.ones(3))           # numpy's BLAS is loaded
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas, "numpy's BLAS library was not found"
    single_threaded_blas()
    single_threaded_blas()                            # idempotent
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == [1] * len(blas)
