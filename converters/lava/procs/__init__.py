"""Custom Lava processes, one package folder per Process (process.py says what, models.py how, per back end)."""
