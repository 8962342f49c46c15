"""Energy read from the hardware while a baseline runs, or a labelled bound where it cannot be read.

Read through zeus (zeus 0.16, PyPI ``zeus``, ml.energy; Apache-2.0): one library for both
counters, RAPL through Linux powercap on Intel and AMD CPUs (package and DRAM energy, its counter
wrap handled) and NVML on NVIDIA GPUs (total energy since driver load, Volta and newer). Why zeus and
not nvidia-ml-py alone: NVML covers GPUs only, and RAPL would then be read by hand from sysfs;
zeus depends on neither torch nor CUDA libraries (its GPU side is nvidia-ml-py's pure-Python
bindings). docs/baselines.md.

What a counter reads is the whole package or GPU: other work running on it at the same time is in
the number too (the report says so). Where no counter can be read (a virtual machine, no
/sys/class/powercap, no permission, no NVML), ``bound`` gives thermal design power x time, labelled
as an upper bound on sustained power: TDP is what the part is designed to dissipate sustained;
short bursts can exceed it (Intel's PL2), so it bounds energy over runs long enough to be
sustained (``baseline`` runs each measurement for at least a second).
"""

from __future__ import annotations

from dataclasses import dataclass

# The highest thermal design power of any part of a CPU family, the bound used when the model name
# says only the family (a virtual machine's "AMD EPYC") and no --tdp-w is given.
FAMILY_TDP_W = {
    "AMD EPYC": (500.0, "AMD EPYC 9965 product page (amd.com, 2024): default TDP 500 W, the highest of the EPYC "
                        "family; the whole socket, of which this process used a few threads"),
    "Intel(R) Xeon(R)": (500.0, "Intel Xeon 6980P product page (ark.intel.com, 2024): TDP 500 W, the highest of "
                                "the Xeon family; the whole socket"),
}


@dataclass
class Meter:
    device: str
    kind: str  # "rapl" | "nvml" | "none"
    why: str  # where the energy comes from, or why it cannot be read
    _read: object = None  # () -> joules since some origin

    @property
    def available(self) -> bool:
        return self._read is not None

    def read_j(self) -> float:
        return float(self._read())


def meter_for(device: str) -> Meter:
    """The energy counter of ``device`` ("cpu" or "cuda[:N]") through zeus, or a Meter saying why
    there is none."""
    try:
        from zeus.device import get_cpus, get_gpus
    except ImportError as exc:  # a stripped install: say so rather than fail the timing
        return Meter(device, "none", f"zeus is not installed ({exc}); energy cannot be read")
    if device == "cpu":
        try:
            cpus = get_cpus()
            n = len(cpus)

            def read() -> float:
                total = 0.0
                for k in range(n):
                    m = cpus.get_total_energy_consumption(k)
                    total += m.cpu_mj + (m.dram_mj or 0.0)
                return total / 1e3
            read()
            return Meter(device, "rapl", f"RAPL package{' + DRAM' if cpus.supports_get_dram_energy_consumption(0) else ''} "
                                         f"energy of {n} CPU package(s), read through zeus", read)
        except Exception as exc:  # zeus raises its own init errors: no RAPL here
            return Meter(device, "none", f"RAPL cannot be read here ({type(exc).__name__}: {exc})")
    index = int(device.split(":")[1]) if ":" in device else 0
    try:
        gpus = get_gpus()
        if not gpus.supports_get_total_energy_consumption(index):
            return Meter(device, "none", "NVML gives no total energy counter for this GPU (older than Volta)")
        return Meter(device, "nvml", f"NVML total energy of GPU {index}, read through zeus",
                     lambda: gpus.get_total_energy_consumption(index) / 1e3)
    except Exception as exc:
        return Meter(device, "none", f"NVML cannot be read here ({type(exc).__name__}: {exc})")


def tdp(device: str, device_name: str, tdp_w: float | None) -> tuple[float, str] | None:
    """(watts, source) for the bound: ``tdp_w`` when given; a GPU's enforced power limit from NVML;
    else the highest TDP of the CPU family its model name names (``FAMILY_TDP_W``); None if unknown."""
    if tdp_w is not None:
        return float(tdp_w), "given (--tdp-w)"
    if device.startswith("cuda"):
        try:
            from zeus.device import get_gpus

            index = int(device.split(":")[1]) if ":" in device else 0
            return get_gpus().get_power_management_limit(index) / 1e3, "the GPU's power limit read through NVML"
        except Exception:
            return None
    for family, (watts, source) in FAMILY_TDP_W.items():
        if device_name.startswith(family):
            return watts, source
    return None
