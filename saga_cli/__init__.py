"""The operator CLI: local stack, services, orders, traces, DLQ, audit, bench, demo."""
