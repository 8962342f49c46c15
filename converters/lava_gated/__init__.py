"""Custom Lava processes for IntNetworks, in a folder of their own.

Lava imports every .py file beside a custom Process while it looks for ProcessModels, so this
package holds only the processes (process.py) and their models (models.py).
"""
