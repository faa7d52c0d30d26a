"""Subcommands of the ``thgs`` CLI (one module each; see :mod:`thgs.cli`)."""
