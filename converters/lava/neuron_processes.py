"""Which Lava Process runs each neuron kind in lmu2neuro's Lava build: the converters-side half of
the neuron registry (``lmu2neuro.core.neurons`` holds the rest; the core imports nothing of ours,
so the Lava classes are registered here). One entry per kind: a function that builds the kind's
process for one population from the parameters every process shares (lanes, window, records)."""

from __future__ import annotations

import numpy as np

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import neurons
from lmu2neuro.core.errors import UserError


def _float_params(pop):
    return dict(du=min(fx.current_removed(pop.du), 1.0), dv=fx.voltage_removed(pop.dv),
                vth=float(pop.vth << fx.ACT_SHIFT), bias_mant=pop.bias.astype(float), bias_exp=0)


def cuba_lif(pop, tag: str, **shared):
    from converters.lava.procs.gated_lif.process import GatedLIF

    params = (_float_params(pop) if tag == "floating_pt" else
              dict(du=pop.du, dv=pop.dv, vth=pop.vth, bias_mant=pop.bias_mant.astype(np.int64),
                   bias_exp=pop.bias_exp))
    return GatedLIF(size=pop.size, reset=pop.reset, refractory=pop.refractory, name=pop.name, **shared, **params)


def sigma_delta(pop, tag: str, bias_frames=None, **shared):
    from converters.lava.procs.gated_sigma_delta.process import GatedSigmaDelta
    from lmu2neuro.core.neurons.sigma_delta import params

    if tag != "fixed_pt" or bias_frames is not None:
        raise UserError(f"population '{pop.name}': neuron kind '{pop.kind}' runs in Lava's fixed_pt only, "
                        f"fed through its a_in (got {tag}{', a bias input' if bias_frames else ''})")
    p = params(pop)
    # Lava's SigmaDelta and Delta take the mantissas and scale them by 2**(spike_exp + state_exp) themselves
    return GatedSigmaDelta(size=pop.size, name=pop.name, vth=int(pop.vth), bias=pop.bias.astype(np.int64),
                           stage=p["stage"], activation=p["activation"], cum_error=bool(p["cum_error"]),
                           spike_exp=int(p["spike_exp"]), state_exp=int(p["state_exp"]), **shared)


# kind -> its process builder; a kind not here is refused by name (``process_for``)
PROCESSES = {"cuba_lif": cuba_lif, "sigma_delta": sigma_delta}


def process_for(pop):
    """The builder of ``pop``'s process, or one UserError line naming the population and its kind."""
    build = PROCESSES.get(pop.kind)
    if build is None:
        nk = neurons.kind(pop.kind)
        raise UserError(f"population '{pop.name}': neuron kind '{pop.kind}' has no process in lmu2neuro's Lava "
                        f"build (Lava's own is {nk.lava_process}); simulate it with the reference executor")
    return build
