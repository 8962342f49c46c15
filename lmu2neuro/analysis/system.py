"""What a whole system adds to the chip-only estimate, with the published evidence where it exists.

A report's chip estimate covers the neurocores' work (and the chip's static power where a profile
has one). A deployed system also runs a host loop: spikes in and out through the chip's embedded
management cores and the host link every step, and those cores draw power while a network is
loaded. Published evidence for either is scarce; this module states what there is, once, and
"not modelled" elsewhere. Nothing here is fitted into an estimate: it is shown beside it.
"""

from __future__ import annotations

BLOUW_LOGS = ("Blouw et al. 2019 raw power logs (github abr/power_benchmarks, logs/running/loihi_run01-05, "
              "logs/idle/loihi_run0*)")
# mW, Loihi 1 system (Blouw 2019, keyword spotting): REFERENCE.md section 5
BLOUW_IDLE_BOOT_MW = 29.5
BLOUW_IDLE_AFTER_RUN_MW = 96.4
BLOUW_RUNNING_MW = 110.2
BLOUW_RATE_PER_S = 296.0  # inferences per second (Table 1)


def blouw_activity_j() -> float:
    """The part of Blouw 2019's Loihi energy per inference that can depend on activity: running
    minus the idle power right after the run (13.8 mW), over one inference (1/296 s): about 47 uJ.
    The paper's 0.27 mJ subtracts the idle at boot instead, so it includes the ~67 mW the system
    draws once a network is loaded, busy or not."""
    return (BLOUW_RUNNING_MW - BLOUW_IDLE_AFTER_RUN_MW) * 1e-3 / BLOUW_RATE_PER_S


# per profile name: rows (what, value, unit, evidence); value None = not modelled, no evidence
EVIDENCE: dict[str, list[dict]] = {
    "loihi1": [
        {"part": "standing power of the loaded system (management cores, board; the chip's static power inside it)",
         "value": BLOUW_IDLE_AFTER_RUN_MW * 1e-3, "unit": "W",
         "evidence": f"{BLOUW_LOGS}: idle after the run {BLOUW_IDLE_AFTER_RUN_MW} mW, against {BLOUW_IDLE_BOOT_MW} mW "
                     f"idle at boot and {BLOUW_RUNNING_MW} mW running; power steps up about 0.8 s before the first "
                     "inference and stays up after the last"},
        {"part": "host I/O time per step (spikes in and out through the embedded x86 cores and the host link)",
         "value": 1.0 / BLOUW_RATE_PER_S / 10, "unit": "s per step (measured step, not an I/O cost alone)",
         "evidence": "Blouw et al. 2019, Table 1: 296 inferences/s at about 10 steps per inference, about 338 us per "
                     "step against single-digit microseconds of modelled neurocore work: the host loop set the "
                     "throughput. No per-spike I/O energy or time is published"},
        {"part": "host I/O energy", "value": None, "unit": "J",
         "evidence": "not modelled: no published per-spike or per-step figure"},
    ],
    "loihi2": [
        {"part": "standing power of the loaded system", "value": None, "unit": "W",
         "evidence": "the profile's static power is lava-dl's PilotNet measurement on Loihi 2 (0.178-0.309 W per chip, "
                     "board-level, already in the static row): no separate figure for the management cores is published"},
        {"part": "host I/O time and energy", "value": None, "unit": "",
         "evidence": "not modelled: lava-dl's PilotNet notebook reports per-step time (150-153 us) with its input "
                     "streamed on chip, and no host I/O breakdown"},
    ],
}
NOT_MODELLED = [{"part": "host I/O, management cores, board", "value": None, "unit": "",
                 "evidence": "not modelled: no published evidence for this profile"}]


def system_rows(profile_name: str, latency_s: float | None) -> list[dict]:
    """The evidence rows for a profile, each with its energy per inference where a power and a
    latency give one (power x the modelled latency)."""
    rows = []
    for r in EVIDENCE.get(profile_name, NOT_MODELLED):
        row = dict(r)
        row["energy_j"] = (r["value"] * latency_s if r["value"] is not None and r["unit"] == "W"
                           and latency_s is not None else None)
        rows.append(row)
    return rows
