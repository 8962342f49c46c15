"""Test-wide settings.

One torch thread: the models under test are tiny, and on a 2-core machine OpenMP's thread
pool makes them several times slower (measured: a 10 ms forward took 1.2 s with 2 threads
while another process was busy).
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by the CLI subprocesses tests start

import torch  # noqa: E402

torch.set_num_threads(1)
