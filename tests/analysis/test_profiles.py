"""Hardware profiles: every shipped number has a source, and bad profiles get one-line errors."""

import pytest
import yaml

from lmu2neuro.core.errors import UserError
from lmu2neuro.analysis.profiles import load_profile, shipped_profiles

EXPECTED = {"loihi1", "loihi2", "spinnaker2", "cpu", "gpu", "jetson", "mac45nm"}


def test_shipped_profiles_load_and_every_number_has_a_source():
    assert EXPECTED <= set(shipped_profiles())
    for name in shipped_profiles():
        prof = load_profile(name)
        assert prof.name == name
        for field, q in prof.quantities():
            assert q.source.strip(), f"{name}: {field} has no source"
            assert not q.assumed or len(q.why) > 20, f"{name}: {field} is assumed without a reason"


def test_loihi_numbers_are_the_published_ones():
    l1 = load_profile("loihi1")
    # the estimate is SANA-FE's silicon fit, the range reaches down to Davies 2018's pre-silicon minimum
    assert l1.energy.ac.value == pytest.approx(35.5e-12) and not l1.energy.ac.assumed
    assert l1.energy.ac.lo == pytest.approx(23.6e-12) and "Davies" in l1.energy.ac.low.source
    assert l1.energy.neuron_update.lo == pytest.approx(52e-12) and l1.energy.neuron_update.hi == pytest.approx(81e-12)
    assert l1.time.ac.lo == pytest.approx(3.5e-9) and l1.barrier_sync.at(4)[0] == pytest.approx(1.4e-6)
    assert l1.static_power.lo == pytest.approx(0.029) and l1.static_power_basis == "chip"
    assert l1.chip.neurons_per_core.value == 1024
    assert l1.chip.synaptic_memory_per_core.value == 128 * 1024
    assert l1.chip.fan_in_axons_per_core.value == l1.chip.fan_out_axons_per_core.value == 4096
    assert l1.static_power.value == pytest.approx(0.104)
    l2 = load_profile("loihi2")
    # Loihi 2 has no published per-op energy: every energy is fitted to PilotNet and marked assumed
    assert all(q.assumed and "pilotnet" in (q.source + q.why).lower() for f, q in l2.quantities()
               if f.startswith(("energy.", "time.")) and f != "energy.mac")
    assert l2.chip.synaptic_memory_per_core.value == 192 * 1024
    assert l2.chip.neurons_per_chip.value == 1_000_000 and l2.chip.synapses_per_chip.value == 120_000_000
    assert any("PilotNet" in q.source for _, q in l2.quantities())
    # neurons per core: the Loihi 2 compiler's own most per core (lava-dl PilotNet printout), up to
    # the brief's chip-wide 1 M / 128
    npc = l2.chip.neurons_per_core
    assert (npc.value, npc.lo, npc.hi) == (3168, 3168, 8192)
    assert "compiler" in npc.source and "brief" in npc.high.source and npc.assumed


def write(tmp_path, data, name="mine.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def base():
    return yaml.safe_load((shipped_profiles()["loihi1"]).read_text())


def test_user_profile_by_path_and_units_converted(tmp_path):
    d = base()
    d["name"] = "myloihi"
    d["energy"]["ac"]["value"] = 30.0  # pJ, as the shipped file writes it
    d["static_power"] = {"value": 0.1, "unit": "W per chip", "source": "mine"}
    d["time"]["ac"] = {"value": 0.004, "unit": "us", "source": "mine"}
    prof = load_profile(write(tmp_path, d))
    assert prof.name == "myloihi" and prof.energy.ac.value == pytest.approx(30e-12)
    assert prof.energy.ac.given == "30 pJ per synaptic operation (binary spike)"
    assert prof.static_power.value == pytest.approx(0.1) and prof.time.ac.value == pytest.approx(4e-9)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["energy"]["ac"].pop("source"), r"mine\.yaml: field 'energy\.ac\.source': missing"),
    (lambda d: d["energy"]["ac"].__setitem__("value", -1.0), r"mine\.yaml: field 'energy\.ac\.value': got -1\.0, expected a number >= 0"),
    (lambda d: d["chip"]["neurons_per_core"].__setitem__("value", "many"), r"field 'chip\.neurons_per_core\.value': got 'many', expected"),
    (lambda d: d.pop("kind"), r"field 'kind': missing"),
    (lambda d: d["energy"]["ac"].__setitem__("assumed", True), r"field 'energy\.ac': .*must say why"),
    (lambda d: d["energy"]["ac"].__setitem__("value", float("inf")), r"'energy\.ac\.value': got inf, expected a finite"),
    (lambda d: d.__setitem__("energy", {}), r"field 'energy': expected at least one of ac, mac"),
    (lambda d: d["chip"]["cores_per_chip"].__setitem__("value", 0), r"field 'chip': expected 'cores_per_chip' of at least 1"),
    (lambda d: d["chip"]["neurons_per_core"].__setitem__("value", 0.5), r"'neurons_per_core' of at least 1"),
    (lambda d: d["chip"].pop("weight_bits_min"), r"both 'weight_bits_min' and 'weight_bits_max', or neither"),
    (lambda d: d["energy"]["ac"].__setitem__("unit", "W"), r"field 'energy\.ac\.unit': got 'W', expected a unit of energy"),
    (lambda d: d["energy"]["ac"].__setitem__("unit", "joules"), r"field 'energy\.ac\.unit': got 'joules'"),
    (lambda d: d["time"]["ac"].__setitem__("unit", "pJ"), r"field 'time\.ac\.unit': got 'pJ', expected a unit of time"),
    (lambda d: d["static_power"].__setitem__("unit", "mJ"), r"field 'static_power\.unit': got 'mJ', expected a unit of power"),
    (lambda d: d["energy"]["ac"]["low"].__setitem__("value", 50.0), r"field 'energy\.ac': expected a range whose low end \(50\)"),
    (lambda d: d["energy"]["ac"]["low"].__setitem__("value", float("nan")), r"'energy\.ac\.low\.value': got nan, expected a finite"),
    (lambda d: d["energy"]["ac"]["low"].pop("source"), r"'energy\.ac\.low\.source': missing"),
    (lambda d: d["time"].pop("neuron_update"), r"field 'time\.neuron_update': missing"),
    (lambda d: d.pop("static_power_basis"), r"'static_power_basis' \(chip or device\)"),
    (lambda d: d["calibration"][0].pop("ratio"), r"'estimate' and 'ratio' together"),
])
def test_bad_profile_is_one_line_error(tmp_path, mutate, message):
    d = base()
    mutate(d)
    with pytest.raises(UserError, match=message) as exc:
        load_profile(write(tmp_path, d))
    assert "\n" not in str(exc.value)


def test_unknown_name_lists_known_ones(tmp_path):
    with pytest.raises(UserError, match="unknown profile 'loihi3': expected one of .*loihi1.*mac45nm"):
        load_profile("loihi3")
    with pytest.raises(UserError, match="not found"):
        load_profile(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UserError, match="list.yaml: expected a mapping"):
        load_profile(tmp_path / "list.yaml")


def test_profiles_command_lists_and_shows(capsys):
    from lmu2neuro.cli import main

    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert f"{name} " in out
    assert main(["profiles", "loihi2"]) == 0
    out = capsys.readouterr().out
    assert "energy.ac = 2.135e-11 J" in out and "(range 1.12e-11-2.18e-11)" in out and "[assumed:" in out
    assert "calibration: lava-dl PilotNet" in out and "low: same calibration" in out
    assert main(["profiles", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
