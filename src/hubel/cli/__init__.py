"""The command-line interface (`hubel --help`)."""

from hubel.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
