"""Hardware profiles shipped with lmu2neuro: one YAML file per target.

Every number in a profile carries its `source`; a number that is assumed rather than published
says `assumed: true` and `why`. Load and validate them with `lmu2neuro.analysis.profiles.load_profile`.
"""

from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent


def shipped_profile_paths() -> dict[str, Path]:
    """Name -> path of every profile YAML shipped in this package."""
    return {p.stem: p for p in sorted(PROFILE_DIR.glob("*.yaml"))}
