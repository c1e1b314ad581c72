"""The package version, in one place for the manifest and the CLI."""

__version__ = "0.4.0"
