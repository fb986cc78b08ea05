"""The package version, importable by any layer."""

__version__ = "0.1.0"
