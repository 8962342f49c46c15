"""Custom Lava processes, one package folder per Process (process.py says what, models.py how, per back end)."""


def one_blas_thread() -> None:
    """Limit this Lava worker's BLAS to one thread.

    Lava runs one OS process per Process, dozens of them on a few cores; a BLAS pool per worker
    sized to every core only oversubscribes the machine (OpenBLAS threads spin while they wait).
    threadpoolctl comes with scikit-learn, a dependency; without it nothing is limited.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(limits=1, user_api="blas")
