"""A sweep of generated bad inputs over five surfaces, each run as the user runs it, in its own process.

Surfaces (issue 24): ``export --model`` (state dicts, checkpoint files, model files, options), netx
files (``inspect``), hardware profile YAML (``profiles``), npz datasets (``dataset``) and
traffic.json (``report``). Each input runs the CLI's main in a forked child (the imports are paid
once, in this process) with stderr captured, an address-space limit (this process's size + 3 GiB)
and a 30 s wall-clock limit, and is classed:

- ok: exit 0; one_line: exit 2 with exactly one line ``error: ...`` and its outputs absent;
- traceback: anything else printed or exit status other than 0/2 (an escaped exception);
- hang: still running at 30 s (``user_hang``: the input is a model file that loops forever, as
  ``python FILE.py`` would; expected); memory: killed or MemoryError under the limit;
- left_output: a failing run that left an output file or a folder it created.

- code_ran: a payload (a pickle, a YAML python tag) created its marker file.

Prints a table and writes JSON. Usage: python benchmarks/input_sweep.py [--per-surface N] (default
240: 1,200 inputs) [--out runs/bench/input_sweep.json]. About 3.5 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import os
import pickle
import random
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)

from lmu2neuro.cli import main  # noqa: E402

# what each surface imports lazily, imported once here so that every forked run does not pay it again
import converters.netx.read  # noqa: E402,F401
import converters.nir.read  # noqa: E402,F401
import lmu2neuro.datasets.arrays  # noqa: E402,F401
import lmu2neuro.pipeline.export  # noqa: E402,F401
import lmu2neuro.pipeline.inspect  # noqa: E402,F401
import lmu2neuro.reports.build  # noqa: E402,F401
import lmu2neuro.training.user_model  # noqa: E402,F401
import snntorch  # noqa: E402,F401

TIMEOUT_S = 30.0


# -- running one input ---------------------------------------------------------------------------------
def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def run_one(argv: list, cwd: Path, outputs=(), user_hang: bool = False) -> dict:
    limit = _vm_bytes() + (3 << 30)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the CLI as the user runs it
        os.close(r)
        code = 1
        try:
            os.setsid()
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            os.chdir(cwd)
            os.dup2(w, 2)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
            code = main([str(a) for a in argv])
        except BaseException:  # noqa: BLE001 - an escaped exception is what the sweep counts
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stderr.flush()
            finally:
                os._exit(code)
    os.close(w)
    chunks, start, hung = [], time.monotonic(), False
    while True:
        left = TIMEOUT_S - (time.monotonic() - start)
        if left <= 0:
            hung = True
            os.killpg(pid, signal.SIGKILL)
            break
        ready, _, _ = select.select([r], [], [], left)
        if ready:
            data = os.read(r, 65536)
            if not data:
                break
            if sum(map(len, chunks)) < 1 << 20:
                chunks.append(data)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    wall = time.monotonic() - start
    text = b"".join(chunks).decode("utf-8", "replace")
    killed = os.WIFSIGNALED(status)
    rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    if hung:
        kind = "user_hang" if user_hang else "hang"
    elif killed or "MemoryError" in text:
        kind = "memory"
    elif rc == 0:
        kind = "ok"
    elif rc == 2 and text.startswith("error: ") and text.count("\n") == 1 and "Traceback" not in text:
        kind = "one_line"
        if any(Path(p).exists() for p in outputs):
            kind = "left_output"
    else:
        kind = "traceback"
    return {"kind": kind, "rc": rc, "wall_s": round(wall, 3), "stderr": text[-600:]}


# -- the surfaces --------------------------------------------------------------------------------------
MODELS = '''
import sys, time
import snntorch as snn
from torch import nn


def leaky():
    return nn.Sequential(nn.Linear(8, 12), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(12, 10), snn.Leaky(beta=0.8, init_hidden=True, output=True))


class Boom(BaseException):
    pass


def raises():
    raise ValueError("bad")


def exits():
    sys.exit(7)


def base():
    raise Boom("x")


def none():
    return None


def forever():
    while True:
        time.sleep(0.1)
'''


def export_inputs(base: Path, n: int, rng: random.Random):
    (base / "models.py").write_text(MODELS)
    (base / "bad_import.py").write_text("raise SystemExit(4)\n")
    ns: dict = {}
    exec(compile(MODELS, "models", "exec"), ns)  # noqa: S102 - our own model text
    torch.manual_seed(0)
    state = ns["leaky"]().state_dict()
    torch.save(state, base / "good.pt")
    keys = [0, (1, 2), None, b"k", "extra", "x" * 400, "\x1b[31m"]
    for i in range(n):
        d = base / f"e{i}"
        d.mkdir()
        ck, func, file, extra, hang = d / "m.pt", "leaky", "models.py", [], False
        k = i % 8
        s = dict(state)
        name = sorted(s)[rng.randrange(len(s))]
        if k == 0:
            s[rng.choice(keys)] = s.pop(name)
        elif k == 1:
            s[name] = rng.choice([s[name].to(torch.complex64), torch.full(s[name].shape, float("nan")),
                                  torch.full(s[name].shape, 1e39, dtype=torch.float64), torch.zeros(3), [1, 2],
                                  "w", {"w": s[name]}])
        elif k == 2:
            del s[name]
        if k <= 2:
            torch.save(s, ck)
        elif k == 3:
            data = (base / "good.pt").read_bytes()
            ck.write_bytes(data[: rng.randrange(len(data))])
        elif k == 4:
            kind = rng.choice(["pickle", "list", "folder", "fifo", "proto5"])
            if kind == "pickle":
                ck.write_bytes(pickle.dumps({"w": _Payload()}))
            elif kind == "list":
                torch.save(list(state.values()), ck)
            elif kind == "folder":
                ck.mkdir()
            elif kind == "fifo":
                os.mkfifo(ck)
            else:
                torch.save(state, ck, pickle_protocol=5)
        else:
            shutil.copyfile(base / "good.pt", ck)
            if k == 5:
                func = rng.choice(["raises", "exits", "base", "none", "absent"])
                if i % 240 == 5:  # one model file that loops forever: a hang of the user's own code
                    func, hang = "forever", True
            elif k == 6:
                extra = ["--dt", rng.choice(["1e-320", "0", "-1", "nan", "inf", "1e300"])]
            else:
                (d / "file").write_text("x")
                extra = rng.choice([["--report", d / "file" / "r.json"], ["--report", "/proc/lmu2neuro/r.json"]])
                if i % 3 == 0:
                    file = "bad_import.py"
        out = d / "o1" / "o2" / "m.nir"
        argv = ["export", "--model", f"{base / file}:{func}", ck, "--dataset", "digits", "--samples", "12", "-o",
                out, *extra]
        yield argv, d, [d / "o1"], hang


class _Payload:
    def __reduce__(self):
        return os.system, ("echo ran > ran.txt",)


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    if rng.random() < 0.5:
        return data[: rng.randrange(len(data))]
    buf = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        span = min(len(buf), 4096) if rng.random() < 0.5 else len(buf)
        buf[rng.randrange(span)] ^= 1 << rng.randrange(8)
    return bytes(buf)


def netx_inputs(base: Path, n: int, rng: random.Random):
    import h5py

    from converters.netx.export import export_netx
    from lmu2neuro.core import fixed_point as fx
    from lmu2neuro.core.intnet import IntNetwork, Population, Projection

    g = np.random.default_rng(1)
    pops = [Population("h", 6, 1024, 512, 60, np.zeros(6, dtype=np.int64)),
            Population("out", 3, 4095, 0, fx.VTH_MAX, np.zeros(3, dtype=np.int64), readout=True)]
    projs = [Projection("in-h", "input", "h", g.integers(-40, 40, (1, 6, 4)) * 2, 0, {"kind": "dense"}),
             Projection("h-out", "h", "out", g.integers(-40, 40, (1, 3, 6)) * 2, 0, {"kind": "dense"})]
    export_netx(IntNetwork(4, 8.0, pops, projs, "out", dt=1e-3), base / "good.net")
    data = (base / "good.net").read_bytes()
    for i in range(n):
        d = base / f"x{i}"
        d.mkdir()
        p = d / "m.net"
        if i % 3 == 2:  # a structural edit through h5py
            p.write_bytes(data)
            with h5py.File(p, "r+") as f:
                names = []
                f.visititems(lambda nm, o: names.append(nm) if isinstance(o, h5py.Dataset) else None)
                t = rng.choice(names)
                del f[t]
                choice = rng.randrange(4)
                if choice == 0:
                    f.create_dataset(t, data=rng.choice([np.nan, 1e308, -1.0, 2.0**63, 0.5]))
                elif choice == 1:
                    f.create_dataset(t, shape=(2**rng.randint(20, 40),), dtype="f8", chunks=(1,))
                elif choice == 2:
                    f.create_dataset(t, data=np.ones([rng.randint(0, 5)] * rng.randint(0, 3)))
        else:
            p.write_bytes(_mutate_bytes(data, rng))
        yield ["inspect", p], d, [], False


def profile_inputs(base: Path, n: int, rng: random.Random):
    from lmu2neuro.analysis.profiles import shipped_profiles

    src = shipped_profiles()["loihi1"]
    doc = yaml.safe_load(src.read_text())
    leaves = []

    def walk(o, path):
        leaves.append(path)
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, path + (k,))
        elif isinstance(o, list):
            for j, v in enumerate(o):
                walk(v, path + (j,))
    walk(doc, ())
    leaves = leaves[1:]
    values = [None, True, -1, 0, 1e308, 1e-320, float("nan"), float("inf"), "x" * 5000, "", [1, 2], {"a": 1},
              10**30, "pJ", 3.4e38]
    for i in range(n):
        d = base / f"p{i}"
        d.mkdir()
        p = d / "p.yaml"
        k = i % 6
        if k == 0:
            p.write_bytes(_mutate_bytes(src.read_bytes(), rng))
        elif k in (1, 2):
            data = copy.deepcopy(doc)
            path = rng.choice(leaves)
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if rng.random() < 0.25:
                del parent[path[-1]]
            else:
                parent[path[-1]] = rng.choice(values)
            p.write_text(yaml.safe_dump(data, width=10**6))
        elif k == 3:
            lv = rng.randint(1, 9)
            lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
            lines += [f"a{j}: &a{j} [{','.join([f'*a{j - 1}'] * 9)}]" for j in range(1, lv + 1)]
            p.write_text("\n".join(lines) + "\n")
        elif k == 4:
            depth = rng.choice([100, 3000, 10000])
            p.write_text("name: " + "[" * depth + "]" * depth + "\n" if rng.random() < 0.5 else
                         "".join(" " * j + "k:\n" for j in range(min(depth, 2000))))
        else:
            kind = rng.choice(["big", "fifo", "folder", "tag", "bigint"])
            if kind == "big":
                p.write_text(src.read_text() + "calibration: [" + ", ".join(["1"] * 3_000_000) + "]\n")
            elif kind == "fifo":
                os.mkfifo(p)
            elif kind == "folder":
                p.mkdir()
            elif kind == "tag":
                p.write_text("name: !!python/object/apply:os.system ['echo ran > ran.txt']\n")
            else:
                p.write_text("name: x\nkind: neuromorphic\nenergy: {ac: {value: " + "9" * 6000 + ", unit: pJ, source: s}}\n")
        yield ["profiles", p], d, [], False


def npz_inputs(base: Path, n: int, rng: random.Random):
    g = np.random.default_rng(0)
    x, y = g.normal(size=(30, 4, 3)).astype(np.float32), np.arange(30) % 3
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    good = buf.getvalue()
    for i in range(n):
        d = base / f"n{i}"
        d.mkdir()
        p = d / "d.npz"
        k = i % 5
        if k == 0:
            p.write_bytes(_mutate_bytes(good, rng))
        else:
            arrays = {"x": x, "y": y.copy()}
            if k == 1:
                yy = y.astype(np.uint64)
                yy[rng.randrange(30)] = rng.choice([10**9, 2**62, np.iinfo(np.uint64).max, 3 * 10**6])
                arrays["y"] = yy
            elif k == 2:
                xx = x.astype(np.float64)
                xx.flat[rng.randrange(xx.size)] = rng.choice([1e39, 1e300, np.nan, np.inf, -1e39])
                arrays["x"] = xx
            elif k == 3:
                target = rng.choice(["x", "y"])
                arrays[target] = rng.choice([arrays[target].astype(np.complex64), arrays[target].astype(object),
                                             arrays[target][:5], np.zeros((3,)), arrays[target].astype("U2")])
            else:
                arrays = rng.choice([{"x_train": x, "y_train": y, "x": x}, {"x_train": x}, {"z": x},
                                     {"x": x[:0], "y": y[:0]}, {"x": x, "y": -y}])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.savez(p, **arrays)
        yield ["dataset", f"npz:{p}"], d, [], False


def traffic_inputs(base: Path, n: int, rng: random.Random):
    sys.path.insert(0, str(ROOT / "tests"))
    from netgen import make_traffic, spiking_mlp

    from converters.nir.export import export_nir
    from lmu2neuro.core.guards import sha256_of

    net = spiking_mlp()
    export_nir(net, base / "model.nir", dt=1e-3)
    g = np.random.default_rng(4)
    traffic = make_traffic(net, g.integers(-4, 20, size=(5, 8, 6)), labels=g.integers(0, 4, size=5),
                           model_sha256=sha256_of(base / "model.nir"))
    text = json.dumps(traffic).encode()
    fields = [("accuracy_by_frame",), ("raster",), ("raster", "layers"), ("samples",), ("timesteps",), ("dt",),
              ("predictions",), ("scores",), ("labels",), ("layers", 1, "spike_counts"), ("layers", 1, "neurons"),
              ("projections", 0, "weight_bits"), ("projections", 0, "nonzero_weights"), ("model",), ("schema",)]
    values = [None, [None] * 8, [0.5] * 3, [1, 2], "x", 10**30, -1, 1e-320, {"layers": {"h1": [[99, 0]]}}, [[0.5]],
              {"a": [[[]]]}, 2**63, ""]
    for i in range(n):
        d = base / f"t{i}"
        d.mkdir()
        p = d / "t.json"
        k = i % 4
        if k == 0:
            p.write_bytes(_mutate_bytes(text, rng))
        elif k in (1, 2):
            data = copy.deepcopy(traffic)
            path = rng.choice(fields)
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = rng.choice(values)
            p.write_text(json.dumps(data))
        else:
            kind = rng.choice(["digits", "deep", "fifo", "folder", "out_under_file", "out_proc"])
            if kind == "digits":
                p.write_bytes(text.replace(b'"samples": 5', b'"samples": ' + b"9" * 5000, 1))
            elif kind == "deep":
                p.write_bytes(text[:-1] + b', "deep": ' + b"[" * 10000 + b"]" * 10000 + b"}")
            elif kind == "fifo":
                os.mkfifo(p)
            elif kind == "folder":
                p.mkdir()
            else:
                p.write_bytes(text)
                (d / "file").write_text("x")
                out = d / "file" / "rep" if kind == "out_under_file" else Path("/proc/lmu2neuro/rep")
                yield ["report", p, "--model", base / "model.nir", "--profile", "loihi1", "-o", out], d, [], False
                continue
        out = d / "o1" / "rep"
        yield ["report", p, "--model", base / "model.nir", "--profile", "loihi1", "-o", out], d, [d / "o1"], False


SURFACES = {"export --model": export_inputs, "netx": netx_inputs, "profile": profile_inputs, "npz": npz_inputs,
            "traffic": traffic_inputs}
KINDS = ("ok", "one_line", "traceback", "hang", "user_hang", "memory", "left_output", "code_ran")


def main_sweep() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-surface", type=int, default=240)
    ap.add_argument("--out", default=str(ROOT / "runs/bench/input_sweep.json"))
    args = ap.parse_args()
    rng = random.Random(24)
    results: dict = {}
    failures: list = []
    work = Path(tempfile.mkdtemp(prefix="input-sweep-"))
    start = time.time()
    try:
        for name, gen in SURFACES.items():
            base = work / name.split()[0]
            base.mkdir()
            counts = dict.fromkeys(KINDS, 0)
            walls = []
            for argv, cwd, outputs, hang in gen(base, args.per_surface, rng):
                r = run_one(argv, cwd, outputs, hang)
                if (cwd / "ran.txt").exists():  # a payload (pickle, YAML tag) that ran
                    r["kind"] = "code_ran"
                counts[r["kind"]] += 1
                walls.append(r["wall_s"])
                if r["kind"] not in ("ok", "one_line", "user_hang"):
                    failures.append({"surface": name, "argv": [str(a) for a in argv], **r})
            results[name] = {**counts, "inputs": sum(counts.values()), "max_wall_s": max(walls),
                             "median_wall_s": float(np.median(walls))}
            print(f"{name:>15}: " + ", ".join(f"{k} {v}" for k, v in results[name].items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = {k: sum(r.get(k, 0) for r in results.values()) for k in (*KINDS, "inputs")}
    out = {"benchmark": "input_sweep", "command": "python benchmarks/input_sweep.py", "timeout_s": TIMEOUT_S,
           "address_space_limit": "this process's VmSize + 3 GiB", "surfaces": results, "total": total,
           "failures": failures[:50], "wall_s": round(time.time() - start, 1)}
    dest = Path(args.out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(out, indent=2) + "\n")
    print(f"total: {total}; wrote {dest}")
    for f in failures[:10]:
        print(f"  {f['surface']} {f['kind']}: {' '.join(f['argv'])[:160]}\n    {f['stderr'][-300:]!r}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main_sweep())
