"""A plain snnTorch model as the layers of ``models.layers``: ``lmu2neuro export --model``.

The user's snnTorch model (trained without our layers) is read as a chain of layers, each feeding
the next one step at a time, as snnTorch's export_to_nir reads an nn.Sequential; its float
parameters are copied into the layers of ``models.layers`` (``convert_snntorch``), each reset rule
made exact on Loihi where it can be, and quantized after training by the lowering. ``run_forward``
runs the user's own forward, checked against that chain. Loading the model file and its state_dict
is ``training.user_model``'s.
"""

from __future__ import annotations

from collections import OrderedDict

import snntorch
import torch
from torch import nn

from lmu2neuro.core.errors import UserError, first_line
from lmu2neuro.models import layers as L
from lmu2neuro.models.neurons import NEURON_MODULES

SCALAR_BETA_FIX = ("snnTorch's export_to_nir fails on a scalar beta ('type mismatch: 0.output: [[N]] -> "
                   "1.input: []'); give each neuron its own: beta=torch.full((N,), b) (and threshold likewise)")
SCALAR_BETA_HINT = (f"{SCALAR_BETA_FIX}, or let `lmu2neuro export --model FILE.py:FUNCTION CHECKPOINT` convert "
                    "the model itself")


def snntorch_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model as a chain: an nn.Sequential's layers (nested ones flattened), else the module's
    own children in the order they are defined (the order its forward must call them, each on the
    previous one's output: ``run_forward`` checks it)."""
    out: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, m: nn.Module) -> None:
        for name, child in m.named_children():
            path = f"{prefix}{name}"
            if isinstance(child, nn.Sequential):
                walk(f"{path}.", child)
            else:
                out.append((path, child))

    walk("", module)
    return out


def _one_value(path: str, name: str, value, hint: str) -> float:
    """A neuron parameter as the one value Loihi gives a population (per-neuron tensors must agree)."""
    t = torch.as_tensor(value, dtype=torch.float64).detach().flatten()
    if t.numel() == 0 or not bool(torch.isfinite(t).all()):
        raise UserError(f"model layer '{path}': {name} holds no finite value")
    if bool((t != t[0]).any()):
        raise UserError(f"model layer '{path}': {name} differs between neurons ({float(t.min()):.4g} to "
                        f"{float(t.max()):.4g}); a Loihi population has one {name} ({hint})")
    return float(t[0])


def _refuse_layer(path: str, module: nn.Module, why: str) -> UserError:
    return UserError(f"model layer '{path}' ({type(module).__name__}): cannot be converted to Loihi: {why}")


def convert_snntorch(module: nn.Module) -> tuple[nn.Module, list[dict]]:
    """The snnTorch model as a model of ``models.layers`` with the same float parameters, calibrated
    input quantizer first (not yet calibrated) -> (module, one record per converted layer).

    Neurons keep their beta, alpha, threshold and reset mechanism (one value per layer; equal
    per-neuron tensors are fine). snnTorch resets one step late by default (``reset_delay=True``);
    a subtract reset is made exact on Loihi's same-step rule by a self connection of weight
    -(1 - beta) threshold one step late (Loihi takes beta threshold off through the decay, snnTorch
    the whole threshold); in a neuron with a current (Synaptic, RSynaptic) the current keeps alpha
    of that, so a second self connection two steps late, alpha (1 - beta) threshold, cancels it. A
    zero reset of Leaky is the same either way. The delayed zero reset of RLeaky, Synaptic and
    RSynaptic (``base - reset * base``) discards the step after a spike (RLeaky its input and
    recurrent input too; the others keep their current): a refractory period of one step on top of
    Loihi's same-step reset (``refractory=1``, exact). A bias into a neuron with a current is carried
    into that current by ``models.quantize`` (an always-on helper neuron). Not exact, stated per layer
    as ``exact: False`` with a note: a subtract reset with ``reset_delay=False``, where a voltage a
    reset leaves above threshold does not fire in snnTorch
    the step after (its "avoid double reset" undoes the delayed reset), but does on Loihi."""


    chain = snntorch_layers(module)
    if not chain:
        raise UserError(f"model {type(module).__name__}: no layers found (expected an nn.Sequential or a module "
                        "whose children are its layers in order)")
    ours: list[tuple[str, nn.Module]] = [("input_quantizer", L.InputQuantizer())]
    records: list[dict] = []
    neurons = 0
    for path, m in chain:
        rec = {"path": path, "type": type(m).__name__}
        new: nn.Module | None
        if isinstance(m, (nn.Identity, nn.Dropout)):
            rec["converted"] = "left out (the identity at inference)"
            records.append(rec)
            continue
        if isinstance(m, snntorch.SpikingNeuron):
            new = _convert_neuron(path, m, rec)
            neurons += 1
        elif type(m) is nn.Linear:
            new = L.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif type(m) in (nn.Conv1d, nn.Conv2d):
            if m.padding_mode != "zeros" or isinstance(m.padding, str):
                raise _refuse_layer(path, m, f"padding {m.padding!r} / padding_mode {m.padding_mode!r}; expected "
                                             "numeric zero padding")
            cls = L.Conv1d if type(m) is nn.Conv1d else L.Conv2d
            new = cls(m.in_channels, m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                      dilation=m.dilation, groups=m.groups, bias=m.bias is not None)
        elif type(m) in (nn.AvgPool1d, nn.AvgPool2d):
            pad = m.padding if isinstance(m.padding, tuple) else (m.padding,)
            if any(pad) or m.ceil_mode:
                raise _refuse_layer(path, m, "padding or ceil_mode; expected plain windows")
            new = (L.AvgPool1d if type(m) is nn.AvgPool1d else L.AvgPool2d)(m.kernel_size, m.stride)
        elif type(m) is nn.Flatten:
            if m.start_dim != 1 or m.end_dim != -1:
                raise _refuse_layer(path, m, f"start_dim={m.start_dim}, end_dim={m.end_dim}; expected the "
                                             "features of each step flattened (start_dim=1, end_dim=-1)")
            new = L.Flatten()
        elif isinstance(m, (nn.MaxPool1d, nn.MaxPool2d)):
            raise _refuse_layer(path, m, "max pooling is not linear; use AvgPool between neuron layers")
        else:
            raise _refuse_layer(path, m, "expected nn.Linear, nn.Conv1d/2d, nn.AvgPool1d/2d, nn.Flatten, "
                                         "snn.Leaky, snn.Synaptic, snn.RLeaky or snn.RSynaptic")
        if not isinstance(m, snntorch.SpikingNeuron):
            with torch.no_grad():
                for name, p in m.named_parameters(recurse=False):
                    getattr(new, name).copy_(p)
            rec["exact"] = True
        ours.append((path.replace(".", "_"), new))
        rec["as"] = ours[-1][0]
        records.append(rec)
    if not neurons:
        raise UserError(f"model {type(module).__name__}: no snnTorch neuron layer (snn.Leaky, snn.Synaptic, "
                        "snn.RLeaky, snn.RSynaptic) found among its layers")
    last = ours[-1][1]
    if isinstance(last, NEURON_MODULES):
        # a spiking output is read by its spike counts: the readout integrates the spikes themselves
        n = _output_size(module)
        count = L.Linear(n, n, bias=False)
        with torch.no_grad():
            count.weight.copy_(torch.eye(n))
        count.helper = "spike-count readout"  # not the model's own synapses (counting)
        ours.append(("spike_count", count))
        records.append({"path": "(readout)", "type": "spike count", "as": "spike_count", "exact": True,
                        "converted": "the output layer's spikes summed over time (argmax = most spikes)"})
    return _Chain(ours), records


def _output_size(module: nn.Module) -> int:
    """Neurons of the output layer: the out_features of the last Linear before it."""
    for _, m in reversed(snntorch_layers(module)):
        if isinstance(m, nn.Linear):
            return m.out_features
    raise UserError(f"model {type(module).__name__}: the output neuron layer follows no nn.Linear; expected "
                    "... -> nn.Linear -> snn.Leaky (or a Linear output)")


def _convert_neuron(path: str, m, rec: dict):


    name = type(m).__name__
    if type(m) not in (snntorch.Leaky, snntorch.Synaptic, snntorch.RLeaky, snntorch.RSynaptic):
        raise _refuse_layer(path, m, "expected snn.Leaky, snn.Synaptic, snn.RLeaky or snn.RSynaptic")
    if getattr(m, "inhibition", False) or m.state_quant or float(m.graded_spikes_factor) != 1.0:
        raise _refuse_layer(path, m, "inhibition, state_quant or graded spikes have no Loihi counterpart here")
    reset = m.reset_mechanism
    if reset == "none":
        raise _refuse_layer(path, m, "reset_mechanism='none' (no reset): a Loihi neuron that fires always resets; "
                                     "expected 'zero' or 'subtract'")
    how = "use one value per layer, or keep per-neuron tensors equal"
    beta = min(max(_one_value(path, "beta", m.beta, how), 0.0), 1.0)  # snnTorch clamps to [0, 1]
    th = _one_value(path, "threshold", m.threshold, how)
    if not th > 0:
        raise _refuse_layer(path, m, f"threshold={th:g}; expected a positive number (a Loihi neuron fires when "
                                     "its voltage exceeds a positive threshold)")
    delayed = bool(m.reset_delay)
    # snnTorch's delayed subtract takes th off after the decay; Loihi 2's same-step one, beta th:
    # the rest, (1 - beta) th, comes one step late through a self connection
    fix = -(1.0 - beta) * th if (reset == "subtract" and delayed) else 0.0
    rec.update(beta=beta, threshold=th, reset_mechanism=reset, reset_delay=delayed)
    if torch.as_tensor(m.beta).ndim == 0:  # fine here; snnTorch's own exporter would fail on it
        rec["scalar_beta"] = True
    kw = {"threshold": th, "reset_mechanism": reset}
    current = type(m) in (snntorch.Synaptic, snntorch.RSynaptic)
    alpha = 0.0
    if current:
        alpha = min(max(_one_value(path, "alpha", m.alpha, how), 0.0), 1.0)
        rec["alpha"] = alpha
    rec["exact"] = True
    if not delayed:
        _no_delay_note(rec, reset)
    elif reset == "zero" and type(m) is not snntorch.Leaky:
        # snnTorch zeroes the voltage of the step after a spike (RLeaky: the whole step, its input and
        # recurrent input lost; Synaptic and RSynaptic keep their current): Loihi's same-step zero reset
        # and one refractory step (voltage held, current integrating on), lif_step's rule
        kw["refractory"] = 1
        rec["refractory"] = 1
        rec["note"] = (f"snnTorch's delayed zero reset of {name} discards the step after a spike"
                       + (" and keeps its current" if current else "") + ": reset in the spiking step and one "
                       "refractory step")
    if fix:
        rec["note"] = (f"subtract reset one step late: a self connection of {fix:.4g} (-(1 - beta) threshold)"
                       + (f", and {-alpha * fix:.4g} (-alpha times it) two steps late, which cancels what the "
                          "current keeps of it" if current else ""))
    v2 = -alpha * fix if (fix and current) else None
    cls = L.RSynaptic if current else L.RLeaky
    args = (alpha, beta) if current else (beta,)
    if type(m) in (snntorch.Leaky, snntorch.Synaptic):
        if not fix:
            return L.Synaptic(alpha, beta, **kw) if current else L.Leaky(beta, **kw)
        new = cls(*args, all_to_all=False, V=fix, V2=v2, learn_recurrent=False, **kw)
        new.recurrent.helper = "reset self connection"  # not the model's own synapses (counting)
        return new
    # RLeaky / RSynaptic: the recurrent map copied, the subtract fix added on its diagonal
    rec_mod = m.recurrent
    if isinstance(rec_mod, nn.Linear):
        new = cls(*args, linear_features=rec_mod.in_features, V2=v2, **kw)
    elif isinstance(rec_mod, nn.Conv2d):
        new = cls(*args, conv2d_channels=rec_mod.in_channels, kernel_size=rec_mod.kernel_size[0], V2=v2, **kw)
    else:
        new = cls(*args, all_to_all=False, V=torch.as_tensor(rec_mod.V).detach().clone(), V2=v2, **kw)
    with torch.no_grad():
        for pname, p in rec_mod.named_parameters():
            getattr(new.recurrent, pname).copy_(p)
        if fix:
            if isinstance(rec_mod, nn.Linear):
                new.recurrent.weight.add_(torch.eye(rec_mod.in_features) * fix)
            elif isinstance(rec_mod, nn.Conv2d):
                k = rec_mod.kernel_size[0] // 2
                for c in range(rec_mod.in_channels):
                    new.recurrent.weight[c, c, k, k] += fix
            else:
                new.recurrent.V.add_(fix)
    if fix:
        rec["note"] += " (added to its own recurrent connections)"
    return new


def _no_delay_note(rec: dict, reset: str) -> None:
    """``reset_delay=False``: a zero reset is Loihi's same-step one (exact) and Synaptic's keeps its
    current as Loihi does; a subtract is not exact: in the step after a spike snnTorch subtracts its
    delayed reset and adds it back ("avoid double reset"), so a voltage a reset leaves above
    threshold does not fire (inputs 2.2, -0.1, 0, 0 at threshold 1, beta 1: snnTorch spikes 1, 0, 0, 0,
    its voltage held at 1.1; Loihi 1, 1, 0, 0)."""
    if reset == "subtract":
        rec["exact"] = False
        rec["note"] = ("reset_delay=False subtract: in the step after a spike snnTorch applies its delayed reset "
                       "and undoes it (its \"avoid double reset\"), so a voltage a reset leaves above threshold "
                       "does not fire there, while Loihi fires and subtracts again; equal only while the voltage "
                       "after a reset stays below threshold")
    else:
        rec["exact"] = True


class _Chain(nn.Sequential):
    """The converted layers in order, on whole sequences (batch, time, *frame)."""
    def __init__(self, layers: list[tuple[str, nn.Module]]):

        super().__init__(OrderedDict(layers))


FORWARD = ("expected forward(x_t) to take one time step (batch, *frame) and call the children in the order they "
           "are defined, each on the previous one's output, as an nn.Sequential does")


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) and out else out


def _same_tensor(a, b) -> bool:
    """``a`` is ``b``, or the same memory seen the same way (a module may return its input re-wrapped)."""
    if a is b:
        return True
    return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.data_ptr() == b.data_ptr()
            and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype)


def reset_hidden(chain) -> None:
    """Every snnTorch neuron of ``chain`` that keeps its own state (init_hidden) starts afresh."""
    for _, m in chain:
        if isinstance(m, snntorch.SpikingNeuron) and getattr(m, "init_hidden", False):
            # a state of another shape than the input is zero to snnTorch: every batch starts afresh
            for attr in ("mem", "syn", "spk"):
                if hasattr(m, attr):
                    setattr(m, attr, torch.zeros(0))


def _check_calls(model_file, chain, calls, x_t, y) -> None:
    """The calls one forward step made (path, input, output) against the chain: same order, each
    child on the previous child's output tensor, the first on the step's input, forward returning
    the last child's output. UserError naming the first layer that differs."""
    where = f"{model_file}: model layer"
    prev, prev_name = x_t, "the step's input"
    for i, (path, _m) in enumerate(chain):
        if i >= len(calls):
            raise UserError(f"{where} '{path}': not called by forward in its turn (after {prev_name}); {FORWARD}")
        called, inp, out = calls[i]
        if called != path:
            raise UserError(f"{where} '{path}': forward calls '{called}' where '{path}' (the next child defined) "
                            f"was expected; {FORWARD}")
        if not _same_tensor(inp, prev):
            raise UserError(f"{where} '{path}': its input in forward is not {prev_name} itself (something is "
                            f"computed between them, e.g. a residual sum or a functional op); {FORWARD}")
        prev, prev_name = _first(out), f"the output of layer '{path}'"
    if len(calls) > len(chain):
        raise UserError(f"{where} '{calls[len(chain)][0]}': called again after the last layer; {FORWARD}")
    if not _same_tensor(_first(y), prev):
        raise UserError(f"{where} '{chain[-1][0]}': forward does not return its output (or (spikes, state) "
                        f"with it first); {FORWARD}")


def run_forward(module: nn.Module, x, model_file, membranes: dict | None = None, cast: bool = False) -> tuple:
    """The user's float snnTorch model run by its own ``forward``, one call per time step (snnTorch's
    own stepping), each call checked by forward hooks against the chain the conversion assumes
    (``snntorch_layers``): x (B, T, *frame) -> (output per step (B, T, C), {path: spikes (B, T, n)}).
    ``membranes`` collects each neuron layer's membrane after every call ({path: (B, T, n)}: what the
    layer returns last, or its ``mem`` with ``init_hidden``; before a delayed reset).
    ``cast``: every neuron layer's outputs are cast to ``x``'s dtype (snnTorch's surrogates return
    float32 spikes whatever the model's dtype), so a model made float64 runs in float64 throughout.
    UserError naming ``model_file`` and the first layer that differs, or when forward cannot run."""
    chain = snntorch_layers(module)

    def to_dtype(_mod, _args, _kwargs, out):  # registered first: the checks below see what the next layer gets
        if isinstance(out, (tuple, list)):
            return type(out)(o.to(x.dtype) if isinstance(o, torch.Tensor) else o for o in out)
        return out.to(x.dtype) if isinstance(out, torch.Tensor) else out
    calls: list[tuple] = []

    def hook_for(path):
        def hook(mod, args, kwargs, out):
            calls.append((path, args[0] if args else next(iter(kwargs.values()), None), out))
            if membranes is not None and path in neurons:
                mem = out[-1] if isinstance(out, (tuple, list)) and len(out) > 1 else getattr(mod, "mem", None)
                if isinstance(mem, torch.Tensor):
                    mems.setdefault(path, []).append(mem.detach().reshape(mem.shape[0], -1))
        return hook

    neurons = {p for p, m in chain if isinstance(m, snntorch.SpikingNeuron)}
    mems: dict[str, list] = {}
    def args_to_dtype(_mod, args):  # a neuron's own recurrent map gets its float32 spikes too
        return tuple(a.to(x.dtype) if isinstance(a, torch.Tensor) else a for a in args)

    handles = [m.register_forward_hook(to_dtype, with_kwargs=True) for p, m in chain if cast and p in neurons]
    handles += [sub.register_forward_pre_hook(args_to_dtype) for p, m in chain if cast and p in neurons
                for sub in m.modules() if sub is not m]
    handles += [m.register_forward_hook(hook_for(p), with_kwargs=True) for p, m in chain]
    reset_hidden(chain)
    outs, spikes = [], {}
    try:
        with torch.no_grad():
            for t in range(x.shape[1]):
                calls.clear()
                x_t = x[:, t]
                try:
                    y = module(x_t)
                except BaseException as exc:  # the user's code: anything but Ctrl-C is one line
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    raise UserError(f"{model_file}: the model's forward fails on one time step of the data (input "
                                    f"{tuple(x_t.shape)}: {first_line(exc)}); {FORWARD}") from None
                _check_calls(model_file, chain, calls, x_t, y)
                for path, _inp, out in calls:
                    if path in neurons:
                        h = _first(out)
                        spikes.setdefault(path, []).append(h.reshape(h.shape[0], -1))
                h = _first(y)
                outs.append(h.reshape(h.shape[0], -1))
    finally:
        for h in handles:
            h.remove()
    if membranes is not None:
        membranes.update({k: torch.stack(v, 1) for k, v in mems.items() if len(v) == x.shape[1]})
    return torch.stack(outs, 1), {k: torch.stack(v, 1) for k, v in spikes.items()}
