"""IntNetwork -> SANA-FE network YAML: structure by hand, wiring into export, and SANA-FE itself when installed."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from converters.sanafe.export import export_sanafe
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, Population, Projection


def small_net():
    w1 = np.zeros((2, 3, 2), np.int64)
    w1[0, 0, 1] = 4
    w1[1, 2, 0] = -6  # one step of delay
    pops = [Population("hid", 3, du=1023, dv=512, vth=10, bias_mant=np.array([0, 5, 0])),
            Population("out", 2, du=4095, dv=0, vth=fx.VTH_MAX, bias_mant=np.zeros(2, np.int64), readout=True)]
    projs = [Projection("in->hid", "input", "hid", w1, weight_exp=1),
             Projection("hid->out", "hid", "out", np.full((1, 2, 3), 2, np.int64))]
    return IntNetwork(2, 1.0, pops, projs, "out")


def test_description_by_hand(tmp_path):
    net = small_net()
    spikes = np.array([[1, 0], [0, 1], [1, 1]])
    path = tmp_path / "net.yaml"
    export_sanafe(net, path, core_of={"hid": [0, 0, 1], "out": [4, 4]}, input_spikes=spikes)
    d = yaml.safe_load(path.read_text())
    groups = {g["name"]: g for g in d["network"]["groups"]}
    soma = groups["hid"]["attributes"][0]["soma"]
    assert soma["threshold"] == 10 * 64 and soma["leak_decay"] == 1 - 512 / 4096
    assert soma["input_decay"] == 1 - 1024 / 4096
    assert groups["hid"]["neurons"][1] == {"1": [{"soma": {"bias": 5.0}}]}
    assert groups["input"]["neurons"][0] == {"0": [{"spikes": [1, 0, 1]}]}
    edges = {next(iter(e)): next(iter(e.values()))[0] for e in d["network"]["edges"]}
    assert edges["input.1 -> hid.0"] == {"weight": 4 * 2 * 64.0}
    assert edges["input.0 -> hid.2"] == {"weight": -6 * 2 * 64.0, "delay": 1}
    assert len(edges) == 2 + 6
    maps = {next(iter(m)): next(iter(m.values()))[0] for m in d["mappings"]}
    assert maps["hid.2"]["core"] == "0.1" and maps["out.0"]["core"] == "1.0"  # 4 cores per tile
    assert maps["input.1"] == {"core": "1.1", "soma": "loihi_inputs[1]"}  # the core after the last one
    assert "&" not in path.read_text()  # no YAML anchors: SANA-FE's reader does not resolve them


def test_graded_input_spikes_refused_and_nothing_written(tmp_path):
    with pytest.raises(UserError, match="binary spikes"):
        export_sanafe(small_net(), tmp_path / "x.yaml", input_spikes=np.array([[2, 0]]))
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize("field,value", [("reset", "subtract"), ("refractory", 2)])
def test_neurons_it_cannot_state_are_refused_and_nothing_written(tmp_path, field, value):
    net = small_net()
    setattr(net.population("hid"), field, value)
    with pytest.raises(UserError, match=f"population 'hid': reset .*SANA-FE export writes the reset-to-zero"):
        export_sanafe(net, tmp_path / "x.yaml")
    assert not (tmp_path / "x.yaml").exists()


def test_sanafe_is_a_format_of_export():
    from lmu2neuro.cli import build_parser
    from lmu2neuro.pipeline.export import FORMATS

    assert "sanafe" in FORMATS
    args = build_parser().parse_args(["export", "ckpt.pt", "-o", "net.yaml", "--format", "sanafe"])
    assert args.format == "sanafe"


def test_sanafe_loads_and_runs_it(tmp_path):
    pytest.importorskip("sanafe", reason="SANA-FE is GPL-3.0, so lmu2neuro never installs it; this development-only cross-check runs where `pip install sanafe` was done by hand")
    net = small_net()
    path = tmp_path / "net.yaml"
    export_sanafe(net, path, input_spikes=np.ones((4, 2), np.int64), log_spikes=True)
    # in a process of its own: SANA-FE's Loihi architecture takes about 2 GB
    code = ("import json, sanafe\n"
            "arch = sanafe.load_loihi()\n"
            "chip = sanafe.SpikingChip(arch)\n"
            f"chip.load(sanafe.load_net({str(path)!r}, arch))\n"
            "r = chip.sim(4)\n"
            "print(json.dumps({'steps': r['timesteps_executed'], 'synapse': r['energy']['synapse']}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["steps"] == 4 and r["synapse"] > 0
