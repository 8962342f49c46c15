"""Report figures as PNG bytes (matplotlib, Agg backend): energy, firing rates, raster, streaming."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import EngFormatter  # noqa: E402


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def layer_energy(layers: list[str], energy_by_profile: dict[str, list[float]], caption: str) -> bytes:
    """Grouped bars: dynamic energy per inference (J, log scale) per layer, one colour per profile."""
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(layers) + 2), 4))
    n = max(len(energy_by_profile), 1)
    width = 0.8 / n
    x = np.arange(len(layers))
    positive = [v for vals in energy_by_profile.values() for v in vals if v > 0]
    floor = min(positive) / 5 if positive else 1e-12
    for k, (name, vals) in enumerate(energy_by_profile.items()):
        vals = np.asarray(vals, dtype=float)
        xs = x + (k - (n - 1) / 2) * width
        # Zero energy has no place on a log axis: no bar, a "0" at the floor instead.
        ax.bar(xs, np.where(vals > 0, vals, np.nan), width, label=name, color=f"C{k % 10}")
        for xi in xs[vals <= 0]:
            ax.text(xi, floor * 1.3, "0", ha="center", va="bottom", fontsize=7, color=f"C{k % 10}")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xticks(x, layers, rotation=30, ha="right")
    ax.yaxis.set_major_formatter(EngFormatter(unit="J"))  # 1 µJ, not 1e-06: the prefix that fits
    ax.set_ylabel("dynamic energy per inference (log scale)")
    ax.set_title("Energy per layer by hardware profile")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="profile")
    ax.grid(axis="y", alpha=0.3, which="both")
    fig.text(0.01, -0.04, caption, fontsize=7, wrap=True, ha="left", va="top")
    return _png(fig)


def firing_rates(layers: list[str], rates: list[float], caption: str) -> bytes:
    """Bars: mean spikes per neuron per time step of each spiking layer, in percent."""
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(layers) + 2), 3.5))
    ax.bar(layers, [100 * r for r in rates], color="tab:orange")
    for i, r in enumerate(rates):
        ax.text(i, 100 * r, f"{100 * r:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("firing rate (% of neurons per step)")
    ax.set_title("Firing rate per layer")
    ax.tick_params(axis="x", rotation=30)
    ax.grid(axis="y", alpha=0.3)
    fig.text(0.01, -0.04, caption, fontsize=7, wrap=True, ha="left", va="top")
    return _png(fig)


def raster(layer_events: dict[str, list], sizes: dict[str, int], steps: int, sample: int, caption: str) -> bytes:
    """Spike raster of one sample: time step on x, neurons of each layer stacked on y.

    Every layer gets a band of at least 1/15 of the height (its neurons spread over it), so a
    layer of a few neurons next to one of thousands is still visible and its label readable.
    """
    fig, ax = plt.subplots(figsize=(7, 4.5))
    total = sum(sizes[name] for name in layer_events) or 1
    min_band = total / 15
    offset = 0.0
    ticks, labels = [], []
    for k, (name, ev) in enumerate(layer_events.items()):
        ev = np.asarray(ev, dtype=float).reshape(-1, 2)
        n = max(sizes[name], 1)
        band = max(float(n), min_band)
        scale = band / n
        ax.scatter(ev[:, 0], offset + (ev[:, 1] + 0.5) * scale - 0.5, s=4, marker="|", color=f"C{k % 10}", label=name)
        ticks.append(offset + band / 2 - 0.5)
        labels.append(f"{name} ({sizes[name]} n, {len(ev)} spikes)")
        offset += band
        ax.axhline(offset - 0.5, color="0.8", lw=0.5)
    if not any(len(ev) for ev in layer_events.values()):
        ax.text(0.5, 0.5, "no spikes in this sample", transform=ax.transAxes, ha="center", color="0.4")
    ax.set_xlim(-0.5, steps - 0.5)
    ax.set_ylim(-0.5, max(offset, 1) - 0.5)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xlabel("time step (frame)")
    ax.set_ylabel("neurons, one band per layer")
    ax.set_title(f"Spike raster, sample {sample}")
    fig.text(0.01, -0.02, caption, fontsize=7, wrap=True, ha="left", va="top")
    return _png(fig)


def streaming(accuracy_by_frame: list[float] | None, energy_by_frame: dict[str, list[float]], caption: str) -> bytes:
    """Accuracy and cumulative energy per inference against frames seen (streaming early exit)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = len(next(iter(energy_by_frame.values()))) if energy_by_frame else len(accuracy_by_frame or [])
    frames = np.arange(1, steps + 1)
    for k, (name, e) in enumerate(energy_by_frame.items()):
        ax.plot(frames, e, color=f"C{k % 10}", label=f"energy, {name}")
    ax.set_yscale("log")
    ax.set_xlabel("frames seen")
    ax.yaxis.set_major_formatter(EngFormatter(unit="J"))
    ax.set_ylabel("cumulative dynamic energy per inference (log)")
    if accuracy_by_frame:
        ax2 = ax.twinx()
        ax2.plot(frames, [100 * a for a in accuracy_by_frame], "k--", lw=2, label="accuracy")
        ax2.set_ylabel("accuracy after t frames (%)")
        ax2.set_ylim(0, 100)
        ax2.legend(loc="lower right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Streaming early exit: accuracy and energy vs frames seen")
    ax.grid(alpha=0.3)
    fig.text(0.01, -0.03, caption, fontsize=7, wrap=True, ha="left", va="top")
    return _png(fig)
