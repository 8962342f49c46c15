"""What TappedDense and TappedConv share: the delay line (the last ``taps`` inputs of every lane, and
which of them may reach the target in the current round, so no spike of one sample reaches the next)
and Dense's weight exponent, per back end."""

from __future__ import annotations

import numpy as np


class DelayLine:
    """A mixin for a PyLoihiProcessModel with ports s_in (lanes, n_in) and proc_params
    source_offset, target_offset, period.

    The ring holds the last ``taps`` inputs per lane stored twice over, so that the entries for
    delays d0..d1-1 are always one row slice (lanes, (d1 - d0) * n_in), without a copy.
    """

    _ring = None

    def ring_setup(self, lanes: int, taps: int, n_in: int, dtype) -> None:
        self._ring = np.zeros((lanes, 2 * taps * n_in), dtype=dtype)
        self._ring_taps, self._ring_n, self._pos = taps, n_in, 0

    def ring_push(self, s_in) -> None:
        """The newest input becomes delay 0, every older one moves one delay on."""
        taps, k = self._ring_taps, self._ring_n
        self._pos = pos = (self._pos - 1) % taps  # delay d sits at ring slot pos + d
        self._ring[:, pos * k:(pos + 1) * k] = s_in
        self._ring[:, (pos + taps) * k:(pos + taps + 1) * k] = s_in

    def ring_window(self, d0: int, d1: int) -> np.ndarray:
        """(lanes, (d1 - d0) * n_in): the inputs of delays d0..d1-1, delay-major."""
        k, pos = self._ring_n, self._pos
        return self._ring[:, (pos + d0) * k:(pos + d1) * k]

    def live_delays(self) -> tuple[int, int]:
        """Delays d0 <= d < d1 whose source step feeds the target's current round.

        The entry at delay d holds the source's output of Lava step t - d (t = time_step,
        1-based), which belongs to the source's round (t - 1 - d - source_offset) // period; the
        sum computed now reaches the target at t + 1, in its round (t - target_offset) // period.
        The two are equal exactly for t - so - (r + 1) * period <= d < t - so - r * period.
        """
        p = self.proc_params
        t, so, period = self.time_step, p["source_offset"], p["period"]
        r = (t - p["target_offset"]) // period
        return max(0, t - so - (r + 1) * period), min(self._ring_taps, t - so - r * period)


def used_taps(weights: np.ndarray) -> tuple[int, int]:
    """(first, last + 1) of the taps with a nonzero weight: the extra delays that align a shorter
    path are all-zero leading taps, never multiplied."""
    w = np.asarray(weights)
    used = np.flatnonzero(np.abs(w).reshape(w.shape[0], -1).sum(axis=1))
    return (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)


def sum_dtype(bound: int):
    """The narrowest type in which every partial sum of a product is an exact integer, given a
    bound on |partial sum|: float32 holds every integer below 2**24 and float64 below 2**53,
    whatever order BLAS adds in; beyond, int64."""
    if bound < 1 << 24:
        return np.float32
    return np.float64 if bound < 1 << 53 else np.int64


class FixedScale:
    """fixed_pt: the accumulated integer sum shifted by the weight exponent, as Lava's Dense does
    (left shift, or arithmetic right shift)."""

    def _scale(self, acc):
        exp = self.proc_params["weight_exp"]
        acc = acc.astype(np.int64)
        return np.left_shift(acc, exp) if exp >= 0 else np.right_shift(acc, -exp)


class FloatScale:
    """floating_pt: the sum times 2 ** weight_exp, in float64."""

    def _sum_dtype(self, w):
        return np.float64

    def _scale(self, acc):
        return acc * 2.0 ** self.proc_params["weight_exp"]
