"""Models: Loihi neurons for snnTorch, the LMU memory, the LMUFormer, presets and streaming.

Every architecture declares its structure once (``graph.py``); ``registry.py`` maps names to
architectures. Importing this package loads no torch: ``config`` stays light for the CLI.
"""
