"""Neuron kinds: each kind is one declared component, registered here and nowhere else.

Like a Lava Process and its ProcessModels (what a neuron is, then how each back end runs it), or a
``nir`` node class (one small dataclass per kind, validation in one place): a ``NeuronKind`` holds
every part of one neuron that the rest of the toolchain needs, and ``Population.kind`` names it.

- ``start`` / ``step``: the integer dynamics the reference executor runs (bit-exact to the Lava
  ProcessModel named by ``lava_process``, which stays the independent check);
- ``check``: the kind's parameters against the chip's limits (``IntNetwork.validate`` asks it);
- ``lava_process``: the name under which ``converters.lava`` registers the Process that runs it
  there (the class lives on the converters side: the core imports nothing of ours);
- ``netx_type`` / ``nir_node``: its spelling in a lava-dl netx file and in NIR (None: none);
- ``qat``: where its differentiable twin lives, or None with ``no_qat`` saying why;
- ``graded`` / ``message_bits``: what a spike is (a unary event, or one message carrying a payload
  of that many bits) and ``update_ops``: what one neuron update costs, for counting.

Adding a kind: a module beside this one that builds a ``NeuronKind`` (``cuba_lif.py`` is the
model), one line in ``KINDS`` below; then, where the kind has them, its Lava process
(``converters/lava/procs/<kind>/`` + one ``register`` line), its file mappings (the netx / NIR
reader) and its QAT twin (``models/``). See docs/neurons.md.
"""

from __future__ import annotations

from lmu2neuro.core.neurons import cuba_lif, sigma_delta
from lmu2neuro.core.neurons.kind import NeuronKind, Update

__all__ = ["NeuronKind", "Update", "KINDS", "DEFAULT", "kind", "by_netx_type"]


# the registry: one line per kind
KINDS: dict[str, NeuronKind] = {k.name: k for k in (cuba_lif.KIND, sigma_delta.KIND)}
DEFAULT = "cuba_lif"


def kind(name: str) -> NeuronKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"neuron kind '{name}': expected one of {', '.join(KINDS)}") from None


def by_netx_type(netx_type: str) -> NeuronKind | None:
    """The kind a netx ``neuron/type`` names, or None."""
    return next((k for k in KINDS.values() if netx_type in k.netx_type), None)
