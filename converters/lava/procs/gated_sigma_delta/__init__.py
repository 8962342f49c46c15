"""The GatedSigmaDelta process, in a folder of its own: Lava imports every .py file beside a custom
Process while it looks for its ProcessModels."""
