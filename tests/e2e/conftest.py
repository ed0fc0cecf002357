"""End-to-end fixtures live in tests/conftest.py: one set of services per session,
shared with the chaos suite."""
