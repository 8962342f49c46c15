"""PilotNet-size convolutions written by `export --format netx`, run in lava-dl's own netx.hdf5.Network.

Usage: python benchmarks/pilotnet_netx_export.py [--steps 8] [--shared] [--out runs/bench/pilotnet_netx_export.json]

1. benchmarks/conv_networks.pilotnet_lavadl (the PilotNet LIF layer shapes: 3x66x200 input, five 3x3
   convolutions, dense 100-50-10-1; random even kernels, the frame as binary spikes) is written by
   converters/netx/export.py and run in lava-dl 0.6's Network in Lava fixed_pt
   (``input_message_bits=8``); every layer's spikes are compared with our reference simulator's
   (layer k of lava-dl's network k + 1 steps late: one step per synapse, the input included).
2. ``--shared``: lava-dl's own PilotNet LIF file (../shared/data/lava_dl_pilotnet_lif), exported by us
   and run the same way with its input layer's ``bias_mant`` set to the recorded image (lava-dl's
   own test), against the Loihi 2 recordings, layer by layer. It takes about as long again.

Lava runs these processes one OS process each on the CPU; about 100 s per run on a shared 2-core
machine. Writes JSON; asserts nothing (tests/converters/netx/ holds the small exact checks).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests" / "converters" / "netx"))

from conv_networks import pilotnet_lavadl  # noqa: E402
from converters.netx.export import export_netx  # noqa: E402
from converters.netx.read import read_netx  # noqa: E402
from lmu2neuro.core import atomic  # noqa: E402
from lmu2neuro.core.executor import execute  # noqa: E402

SHARED = ROOT.parent / "shared" / "data" / "lava_dl_pilotnet_lif"
RECORDED = ("input", "conv-0", "conv-1", "conv-2", "conv-3", "conv-4", "fc-0", "fc-1", "fc-2")


def random_pilotnet(steps: int, folder: Path) -> dict:
    from netx_nets import run_lava_netx

    net, x = pilotnet_lavadl(steps=steps, batch=1, spiking_input=True)
    path = folder / "pilotnet_lavadl.net"
    export_netx(net, path)
    t0 = time.perf_counter()
    raw = run_lava_netx(path, x[0])  # lava-dl's Network, input spikes graded 8-bit
    wall = time.perf_counter() - t0
    ref = execute(net, x)
    layers = {}
    for k, pop in enumerate(net.populations):
        ours = ref.spikes[pop.name][0].numpy()
        theirs = raw[k][k + 1:k + 1 + steps]
        layers[pop.name] = {"spikes": int(ours.sum()), "identical": bool(np.array_equal(theirs, ours)),
                            "mismatched": int(np.count_nonzero(theirs != ours))}
    return {"network": "conv_networks.pilotnet_lavadl(spiking_input=True)", "steps": steps,
            "lava_dl_wall_s": wall, "layers": layers, "all_identical": all(v["identical"] for v in layers.values())}


def shared_pilotnet(steps: int, folder: Path) -> dict:
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.monitor.process import Monitor

    path = folder / "pilotnet_lif.net"
    export_netx(read_netx(SHARED / "network.net"), path)
    nx = netx.hdf5.Network(net_config=str(path))
    nx.layers[0].neuron.bias_mant.init = np.load(SHARED / "image.npy")
    total = steps + len(RECORDED)
    mons = []
    for lay in nx.layers[:len(RECORDED)]:
        m = Monitor()
        m.probe(lay.neuron.s_out, total)
        mons.append(m)
    t0 = time.perf_counter()
    try:
        nx.run(RunSteps(total), Loihi2SimCfg(select_tag="fixed_pt"))
        raw = [np.asarray(m.get_data()[lay.neuron.name]["s_out"]) for m, lay in zip(mons, nx.layers)]
    finally:
        nx.stop()
    wall = time.perf_counter() - t0
    layers = {}
    for k, (d, name) in enumerate(zip(raw, RECORDED)):
        d = (d.transpose(0, 3, 2, 1) if d.ndim == 4 else d).reshape(total, -1) != 0
        rec = np.load(SHARED / f"{name}.npy")
        rec = rec.transpose(3, 2, 1, 0).reshape(rec.shape[3], -1) if rec.ndim == 4 else rec.T
        a, b = d[k:steps], rec[k:steps]
        layers[name] = {"identical": bool(np.array_equal(a, b)), "mismatched": int(np.count_nonzero(a != b)),
                        "recorded_spikes": int(b.sum())}
    return {"network": "lava-dl PilotNet LIF (shared network.net), exported by lmu2neuro", "steps": steps,
            "lava_dl_wall_s": wall, "vs": "Loihi 2 recordings (layer k k steps late)", "layers": layers}


def main(argv=None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--shared", action="store_true", help="also run the shared PilotNet LIF file (about 100 s more)")
    ap.add_argument("--out", default="runs/bench/pilotnet_netx_export.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        result = {"benchmark": __doc__.splitlines()[0], "random_pilotnet": random_pilotnet(args.steps, Path(d))}
        if args.shared:
            result["shared_pilotnet"] = shared_pilotnet(args.steps + 8, Path(d))
    atomic.write_json(args.out, result)
    for key in ("random_pilotnet", "shared_pilotnet"):
        if key in result:
            r = result[key]
            print(f"{r['network']}: lava-dl {r['lava_dl_wall_s']:.0f} s; " + ", ".join(
                f"{name} {'identical' if v['identical'] else str(v['mismatched']) + ' differ'}"
                for name, v in r["layers"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
