"""The `podcap` command line: `podcap serve` and a client for a running server.

Import from submodules; the console script is ``podcap.cli.main:main``.
"""
