"""The Lava backend: IntNetwork -> Lava process graph, run in fixed_pt (bit-accurate) or floating_pt.

lava-nc 0.10 and lava-dl 0.6 were written for Python < 3.11; importing this package installs the
compatibility layer (``compat.install``) before any module of it imports Lava, so every Lava
import made through the project, or after ``import converters.lava``, works on Python 3.11.
"""

from converters.lava import compat

compat.install()
