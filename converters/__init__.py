"""Every bridge between the integer network and another format or runtime.

- ``converters.nir``: NIR files read (ours exactly, anyone's quantized) and written, and a float
  executor for any NIR graph;
- ``converters.netx``: lava-dl netx HDF5 files;
- ``converters.lava``: the Lava backend (compatibility layer for Python 3.11, the builder, and one
  folder per custom Process).

Converters import only the core (``lmu2neuro.core``); importing this package has no side effect.
"""
