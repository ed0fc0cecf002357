"""`python -m saga_cli`: the same command as `saga`."""

from saga_cli.main import cli

cli(prog_name="saga")
