"""BatchedSource: the input frames of B samples side by side, read from an .npy file (its
ProcessModels, per back end, are in models.py beside it)."""

from __future__ import annotations

from lava.magma.core.process.ports.ports import OutPort
from lava.magma.core.process.process import AbstractProcess


class BatchedSource(AbstractProcess):
    """Sends, at Lava step t (1-based), frame (t - 1) % steps of the samples of round
    (t - 1) // steps: lane b of round r carries sample r * lanes + b of the array in ``path``
    (samples, steps, size), zeros in lanes past the last sample and after the last round.

    Lava's RingBuffer would hold the whole stream in a Var, copied into its process at start;
    the file is mapped instead, so a stream of any length costs no memory up front.
    """

    def __init__(self, *, path: str, lanes: int, size: int, steps: int, samples: int, **kwargs):
        super().__init__(path=str(path), lanes=int(lanes), steps=int(steps), samples=int(samples), **kwargs)
        self.s_out = OutPort(shape=(int(lanes), int(size)))
