"""The console's own named queries (sql/queries.sql), beside the CLI's read models."""

from __future__ import annotations

from eventing.queries import Queries

__all__ = ["Q"]

Q = Queries.load("saga_cli.console", "sql/queries.sql")
