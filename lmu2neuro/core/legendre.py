"""The Legendre Memory Unit's linear system: continuous (A, B), zero-order hold, impulse response.

A fact of the deployed network (a projection of origin ``lmu_fir`` is this impulse response, and
the NIR export states the continuous system), so it lives in the core; the torch module that
trains with it is ``lmu2neuro.models.lmu``.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import cont2discrete


def lmu_state_space(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous LMU matrices for ``theta * dm/dt = A m + B u``: A (d, d) and B (d, 1), float64.

    A[i, j] = (2i+1) * (-1 if i < j else (-1)^(i-j+1)),  B[i] = (2i+1) * (-1)^i
    (Voelker, Kajic and Eliasmith 2019). Divide by theta for the time constant.
    """
    if order < 1:
        raise ValueError(f"LMU order must be >= 1, got {order}")
    q = np.arange(order, dtype=np.float64)
    i, j = np.meshgrid(q, q, indexing="ij")
    r = (2 * q + 1)[:, None]
    a = r * np.where(i < j, -1.0, (-1.0) ** (i - j + 1))
    b = r * ((-1.0) ** q)[:, None]
    return a, b


def lmu_discrete(order: int, theta: float, dt: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Zero-order-hold discretisation (scipy cont2discrete) of A/theta, B/theta: Abar (d, d), Bbar (d, 1)."""
    if theta <= 0:
        raise ValueError(f"LMU theta must be > 0, got {theta}")
    a, b = lmu_state_space(order)
    c = np.ones((1, order))
    d = np.zeros((1, 1))
    abar, bbar, *_ = cont2discrete((a / theta, b / theta, c, d), dt=dt, method="zoh")
    return abar, bbar


def impulse_response(order: int, theta: float, length: int) -> np.ndarray:
    """H (d, length) float64 with H[:, k] = Abar^k Bbar: the memory's response to a unit u at k = 0."""
    abar, bbar = lmu_discrete(order, theta)
    h = np.empty((order, length), dtype=np.float64)
    col = bbar[:, 0].copy()
    for k in range(length):
        h[:, k] = col
        col = abar @ col
    return h
