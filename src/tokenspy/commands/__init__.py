"""Subcommands of the ``tokenspy`` CLI, one module per group."""
