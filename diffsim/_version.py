"""The version, written once: pyproject.toml reads it from here (hatch's version source)."""

__version__ = "0.2.0"
