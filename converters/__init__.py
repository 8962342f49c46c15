"""Bridges between formats: snnTorch model -> NIR, NIR -> Lava, NIR -> netx.

Importing this package installs the lava compatibility layer first, so any lava import made
through the project works on Python 3.11.
"""

from converters import lava_compat

lava_compat.install()
