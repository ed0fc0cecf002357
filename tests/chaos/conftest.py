"""The chaos suite reuses the end-to-end fixtures (services as real processes)."""

from tests.e2e.conftest import running, services

__all__ = ["running", "services"]
