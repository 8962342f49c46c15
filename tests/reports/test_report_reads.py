"""A report that reads right: units that fit, the model's own counts under NeuroBench's names beside
the chip's work, the fidelity block, which samples an accuracy is on, the system section, measured
baselines beside the published ones; and report.html in a real headless browser (Debian's chromium
driven by Selenium through Debian's chromedriver)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from converters.nir.export import export_nir
from lmu2neuro.cli import main
from lmu2neuro.core.guards import sha256_of
from lmu2neuro.reports.units import fmt_quantity, fmt_range
from netgen import make_traffic, spiking_mlp

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def test_units_fit_the_value():
    assert fmt_quantity(0.000157, "s") == "157 us"
    assert fmt_quantity(2.5e-3, "J") == "2.5 mJ" and fmt_quantity(4.7e-5, "J") == "47 uJ"
    assert fmt_quantity(12.0, "W") == "12 W" and fmt_quantity(0.0, "J") == "0 J" and fmt_quantity(None, "s") == "n/a"
    assert fmt_range(1.57e-4, 1.2e-4, 2.1e-4, "s") == "157 us [120-210 us]"
    assert fmt_range(3e-6, 3e-6, 3e-6, "J") == "3 uJ"
    assert fmt_range(8.82e-7, 3.33e-7, 3.18e-6, "J") == "882 nJ [333 nJ-3.18 uJ]"  # each end in its own prefix


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("reads")
    net = spiking_mlp()
    net.projections[-1].origin["helper"] = "spike-count readout"  # as a conversion marks the readout it adds
    model = d / "model.nir"
    export_nir(net, model, dt=1e-3)
    rng = np.random.default_rng(4)
    x = rng.integers(-4, 20, size=(5, 8, 6))
    traffic = make_traffic(net, x, labels=rng.integers(0, 4, size=5), model_sha256=sha256_of(model))
    (d / "traffic.json").write_text(json.dumps(traffic))
    fidelity = {"source": "snn.py:make() with m.pt, run in float32", "samples": 360, "dataset": "digits",
                "split": "test", "prediction_agreement": 0.9833, "float_accuracy": 0.9611, "int_accuracy": 0.9556,
                "warn_below": 0.9, "layers": {"h1": {"int_spikes": 900, "float_spikes": 1000, "spike_ratio": 0.9}}}
    (d / "model.fidelity.json").write_text(json.dumps(fidelity))
    measured = {"device": "cpu", "device_name": "Test CPU", "torch": "2.13.0", "threads": 2,
                "measured": [{"network": "ann", "batch": 1, "passes": 1, "latency_s": 2.03e-2, "latency_min_s": 1.4e-3, "throughput_per_s": 49.3,
                              "per_inference_s": 2.03e-2, "energy_bound_j_per_inference": 10.1,
                              "energy_basis": "UPPER BOUND, not a measurement: TDP 500 W x time"}],
                "tabled": {"profile": "cpu", "label": "published, not measured here",
                           "ann": {"macs": 1.4e7, "latency_s": 4.53e-2, "latency_ratio_to_measured": 2.23}}}
    (d / "baseline.json").write_text(json.dumps(measured))
    out = d / "out"
    assert main(["report", str(d / "traffic.json"), "--model", str(model), "--profile", "loihi1", "--profile", "loihi2",
                 "--profile", "cpu", "--measured", str(d / "baseline.json"), "-o", str(out)]) == 0
    return out, traffic


def test_report_states_what_each_number_is(report):
    out, traffic = report
    rep = json.loads((out / "report.json").read_text())
    md = (out / "report.md").read_text()
    # (a) under NeuroBench's names, helpers counting nothing; (b) every event, helpers named
    nb = rep["neurobench"]
    assert set(nb) == {"SynapticOperations", "ActivationSparsity", "MembraneUpdates", "ParameterCount",
                       "ConnectionSparsity", "Footprint"}
    readout = next(p for p in rep["counts"]["projections"] if p["helper"])
    assert nb["SynapticOperations"]["Dense"] == sum(p["dense_macs"] for p in rep["counts"]["projections"]
                                                    if not p["helper"]) and readout["dense_macs"] == 0
    assert rep["chip_work"]["helper_synaptic_ops_by_kind"] == {"spike-count readout": readout["synaptic_ops"]} \
        and readout["synaptic_ops"] > 0
    assert "spike-count readout: " in md
    # which samples each accuracy is on
    assert f"on {traffic['samples']} samples" in md
    assert "| float accuracy | 0.9611 | digits test split, 360 samples |" in md
    assert "| spikes, layer h1: deployed / float | 0.9 | 900 / 1,000 |" in md
    # times and energies in the unit that fits: no bare seconds or joules in scientific notation
    table = md.split("## Energy, latency and power per inference by profile")[1].split("\n## ")[0]
    assert not re.search(r"\d\.?\d*e[-+]\d+", table), table
    assert re.search(r"\d (us|ms|uJ|mJ|nJ)", table)
    # the system section: the chip beside what a system adds, evidence or 'not modelled'
    assert "## Chip and system on loihi1" in md and "96.4 mW" in md and "## Chip and system on loihi2" in md
    assert "not modelled" in md and "## Chip and system on cpu" not in md
    # measured rows beside the tabled, published ones
    assert "## Measured here: Test CPU (cpu)" in md and "<= 10.1 J (bound)" in md and "2.23x the batch-1" in md
    assert "| 20.3 ms (fastest 1.4 ms) |" in md
    assert md.count("published, not measured here") >= 3  # cpu, gpu, mac45nm rows


def test_a_measured_file_that_is_not_a_baseline_is_one_line(report, tmp_path, capsys):
    out, _ = report
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"device": "cpu"}))
    d = out.parent
    assert main(["report", str(d / "traffic.json"), "--model", str(d / "model.nir"), "--profile", "cpu",
                 "--measured", str(bad), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--measured" in err and "field 'measured' missing" in err
    assert not (tmp_path / "o" / "report.json").exists()


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip: selenium, in the dev "
                                                                 "extra)")
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.skip("Debian package 'chromium' not installed (make system-packages installs it as root)")
    if not Path(CHROMEDRIVER).exists():
        pytest.skip("Debian package 'chromium-driver' not installed (make system-packages installs it as root)")
    from selenium.webdriver.chrome.service import Service

    return webdriver, Service


def test_report_html_renders_in_a_real_headless_browser(report, tmp_path):
    webdriver, Service = _browser()
    out, _ = report
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1000,1400",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    # the driver's path given explicitly: selenium-manager downloads nothing
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.get((out / "report.html").as_uri())
        assert driver.title == "lmu2neuro report"
        assert driver.execute_script("return document.readyState") == "complete"
        # nothing spills past the page: a wide table scrolls inside itself
        assert driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        imgs = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(imgs) == len(json.loads((out / "report.json").read_text())["figures"]) >= 3
        assert all(done and w > 0 and h > 0 for done, w, h in imgs), imgs
        # every table parsed whole: each row as wide as its header, no text outside the cells
        shapes = driver.execute_script(
            "return Array.from(document.querySelectorAll('table')).map(t => Array.from(t.rows).map(r => r.cells.length))")
        assert len(shapes) >= 8
        for rows in shapes:
            assert len(rows) >= 2 and len(set(rows)) == 1, rows
        heads = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
        assert any(h.startswith("The model's own compute") for h in heads)
        assert any(h.startswith("Fidelity") for h in heads) and any(h.startswith("Measured here") for h in heads)
        # every link points at a file written beside the page
        links = driver.execute_script("return Array.from(document.links).map(a => a.href)")
        assert len(links) >= 5
        for href in links:
            assert href.startswith("file://") and Path(href[len("file://"):]).is_file(), href
        text = driver.find_element("tag name", "body").text
        assert "96.4 mW" in text and "Effective_ACs" in text
    finally:
        driver.quit()
