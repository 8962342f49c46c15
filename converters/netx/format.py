"""Facts of the lava-dl netx HDF5 format that its reader and its writer both use (lava-dl 0.6)."""

from __future__ import annotations

from lmu2neuro.core import fixed_point as fx

NETX_BIAS_EXP = 6  # lava-dl's get_neuron_params fixes bias_exp = 6
MAX_DELAY = 62  # lava-dl's DelayDense max_delay
# neuron/refDelay is Loihi's refractDelay (6 bits): 1 is the plain LIF, k holds the neuron k - 1 steps
REF_DELAY_MAX = fx.REFRACTORY_MAX + 1


def ref_delay(refractory: int) -> int:
    """neuron/refDelay for a population's refractory period (``Population.refractory``)."""
    return int(refractory) + 1


def refractory_of(ref_delay: int) -> int:
    """The refractory period a neuron/refDelay states (0 is taken as 1: no held step)."""
    return max(int(ref_delay) - 1, 0)
