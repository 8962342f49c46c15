"""lmu2neuro: a spiking LMUFormer from snnTorch training to a Loihi-style deployment plan."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lmu2neuro")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
