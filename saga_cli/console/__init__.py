"""`saga console`: a small web app over the CLI's read models (traces, stuck sagas, DLQ)."""

from __future__ import annotations

from saga_cli.console.app import create_app

__all__ = ["create_app"]
