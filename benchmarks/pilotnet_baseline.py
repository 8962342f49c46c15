"""lava-dl's PilotNet as a conventional network, measured on this machine, beside the tabled `cpu` profile.

Usage: python benchmarks/pilotnet_baseline.py [--batch 4] [--min-time 1] [--ann-only] [--out runs/bench/pilotnet_baseline.json]

The network is lava-dl's own PilotNet LIF netx file (../shared/data/lava_dl_pilotnet_lif/network.net:
a 3x200x66 input layer, five convolutions, four dense layers; 16 steps per inference on a static
frame), read by our netx reader into the deployed IntNetwork. `lmu2neuro baseline`'s code
(pipeline.baseline.run_baseline) builds its non-spiking equivalent (ReLU for LIF, ONE pass: the
input is static and nothing is recurrent) and the SNN as a dense torch network (16 steps), times
both on this machine's CPU at batch 1 and at --batch, and puts the tabled `cpu` profile's
estimate (Blouw et al. 2019's CPU at 313.4 Mop/s, batch 1: published, not measured here) beside
the measurement as a ratio. The machine is shared (2 cores, other jobs): absolute times move
with its load.

The netx reader refuses the input layer's transform bias until issue 22 lands; until then this
reads a temporary copy with that bias set to 0 (the timing does not depend on its value; the
MAC count is the same).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
NET = ROOT.parent / "shared" / "data" / "lava_dl_pilotnet_lif" / "network.net"
STEPS = 16  # lava-dl's PilotNet notebook: 16 steps per sample


def read_pilotnet(tmp: Path):
    import h5py

    from converters.network_file import read_network_file
    from lmu2neuro.core.errors import UserError

    try:
        return read_network_file(NET), "read as is"
    except UserError as exc:
        copy = tmp / "pilotnet.net"
        shutil.copy(NET, copy)
        with h5py.File(copy, "r+") as f:
            f["layer/0/bias"][()] = 0.0
        return read_network_file(copy), f"read with the input layer's bias set to 0 (the reader said: {exc})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--ann-only", action="store_true", help="skip the dense SNN (16x the ANN's work)")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "pilotnet_baseline.json"))
    args = ap.parse_args()
    if not NET.exists():
        print(f"skipped: {NET} not found (the shared PilotNet data)")
        return 0
    from lmu2neuro.pipeline.baseline import format_baseline, run_baseline

    with tempfile.TemporaryDirectory() as tmp:
        net, how = read_pilotnet(Path(tmp))
        res = run_baseline(net, timesteps=STEPS, static=True, batch=args.batch, min_time_s=args.min_time,
                           networks=("ann",) if args.ann_only else ("ann", "snn_dense"))
    res["network_file"] = str(NET)
    res["read"] = how
    print(format_baseline(res))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
