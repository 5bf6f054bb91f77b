"""`single_threaded_blas`: every BLAS library numpy loaded runs on one thread afterwards."""

import json
import subprocess
import sys
from pathlib import Path

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


def test_every_xrcell_command_runs_its_blas_on_one_thread():
    # a fresh process: this one's limit is already set by the test above
    code = ("import json, sys; from threadpoolctl import threadpool_info; from xr_server.cli import main; "
            "rc = main(['check-cell', 'launch/cells/demo.yaml']); "
            "print(json.dumps([lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    threads = json.loads(done.stdout.strip().splitlines()[-1])
    assert threads and threads == [1] * len(threads), done.stdout
