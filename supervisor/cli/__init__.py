"""The `supervisor` command line: one module per command group."""

from supervisor.cli.main import main

__all__ = ["main"]
