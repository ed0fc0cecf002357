"""Settings read from the environment: one place for every knob and its variable name.

Defaults point at the local stack that `saga stack up` runs, so a fresh checkout works with
no configuration; anyone with their own Kafka and PostgreSQL sets the variables instead
(compose.yaml uses the same names).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from eventing.retry import COMPENSATION, FORWARD, RetryPolicy

__all__ = [
    "SERVICES",
    "Settings",
    "default_cache_dir",
    "default_stack_dir",
    "load_settings",
    "local_admin_dsn",
    "local_dsn",
    "log_format",
    "log_level",
]

SERVICES = ("order", "inventory", "payment", "fulfillment")

DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_PG_PORT = 15432


def default_stack_dir() -> Path:
    # PostgreSQL runs as the `postgres` OS user when we are root, and root's home is not
    # traversable by other users: keep the stack where that user can reach it.
    if os.geteuid() == 0:
        return Path("/var/lib/checkout-saga")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "checkout-saga"


def default_cache_dir() -> Path:
    # Downloads (the Kafka jars) live outside the work tree and outside the stack dir, so a
    # fresh clone or `stack down --wipe` does not fetch them again.
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "checkout-saga"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; unset it or give a number") from None


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number; unset it or give a number") from None


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def log_level(default: str) -> str:
    """SAGA_LOG_LEVEL, checked (the CLI reads it alone, before any other setting)."""
    value = _env("SAGA_LOG_LEVEL", default).strip().upper()
    if value not in _LEVELS:
        raise ValueError(f"SAGA_LOG_LEVEL={value!r} must be one of: {', '.join(_LEVELS)}")
    return value


def log_format() -> str:
    return _env_choice("SAGA_LOG_FORMAT", ("auto", "json", "console"), "auto")


def _retry(kind: str, default: RetryPolicy) -> RetryPolicy:
    prefix = f"SAGA_RETRY_{kind}_"
    attempts = _env_int(prefix + "MAX_ATTEMPTS", default.max_attempts)
    if attempts < 1:
        raise ValueError(f"{prefix}MAX_ATTEMPTS={attempts} must be at least 1")
    return RetryPolicy(
        max_attempts=attempts,
        max_age_s=_positive(prefix + "MAX_AGE_S", default.max_age_s),
        base_delay_s=_positive(prefix + "BASE_DELAY_S", default.base_delay_s),
        max_delay_s=_positive(prefix + "MAX_DELAY_S", default.max_delay_s),
    )


def _env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = _env(name, default).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r} must be one of: {', '.join(choices)}")
    return value


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, "1" if default else "0").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a yes/no value; use 1 or 0")


def _positive(name: str, default: float) -> float:
    value = _env_float(name, default)
    if value <= 0:
        raise ValueError(f"{name}={value:g} must be a positive number of seconds")
    return value


def local_dsn(service: str, port: int) -> str:
    """The DSN of a service's database in the local stack (role = password = `<svc>_svc`)."""
    role = f"{service}_svc"
    return f"postgresql://{role}:{role}@127.0.0.1:{port}/{service}_db"


def local_admin_dsn(port: int) -> str:
    """The superuser DSN of the local stack (`postgres`, password `postgres`, loopback only)."""
    return f"postgresql://postgres:postgres@127.0.0.1:{port}/postgres"


@dataclass(frozen=True)
class Settings:
    stack_dir: Path
    kafka_port: int
    kafka_controller_port: int
    pg_port: int
    kafka_bootstrap_servers: str
    db_dsns: dict[str, str]
    topic_partitions: int
    http_host: str
    http_port: int
    log_format: str
    log_level: str
    reservation_ttl_s: float
    reaper_interval_s: float
    outbox_retention_s: float
    batch_size: int
    extra: dict[str, str] = field(default_factory=dict)
    # For tools and tests that create databases (never for a service: services get their own
    # role, which can reach its own database only).
    pg_admin_dsn: str = ""
    cache_dir: Path = field(default_factory=default_cache_dir)
    # The checkout API's admission control and database pool (order service only); see
    # order_svc/api/admission.py. A rate or cap of 0 turns that limit off.
    http_rate_limit: float = 2000.0
    http_rate_burst: int = 500
    http_max_in_flight: int = 5000
    # adaptive: the in-flight limit follows saga latency toward the target, between the
    # minimum and SAGA_HTTP_MAX_IN_FLIGHT (order_svc/api/adaptive.py); fixed: the maximum is
    # the cap.
    http_admission: str = "adaptive"
    http_latency_target_s: float = 1.0
    http_min_in_flight: int = 100
    # Placing connections, each with its thread. Few, so that checkouts arriving together
    # share a transaction: at 250/s, 8 cost the API 30 % more CPU per order than 2, which
    # still overlap one batch's commit with the next batch.
    http_db_pool_size: int = 2
    # Which instance of its service this process is (log lines carry it), and whether the
    # checkout API shares its port with other instances (SO_REUSEPORT: the kernel spreads
    # connections over them). Off by default, so that a second order service started by
    # mistake is an error rather than a silent partner.
    # Brokers of the local stack (1 or 3), as `saga stack up --brokers` recorded them.
    kafka_brokers: int = 1
    # Retry budgets of parked messages: forward steps, and compensations (eventing/retry.py).
    retry_forward: RetryPolicy = FORWARD
    retry_compensation: RetryPolicy = COMPENSATION
    # Test hook: die by SIGKILL at a point of message processing (eventing/crashpoints.py).
    crash_point: str = ""
    instance: str = ""
    instances: int = 1
    # Where /metrics, /healthz and /readyz are served (None: the service's default port,
    # see eventing.runtime.metrics_port; 0: not served).
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    http_reuse_port: bool = False
    # 0: the API runs in the order service's own process; N: in N processes of its own
    # sharing the port, so that it does not compete with the consumer for one GIL. One is
    # the measured best on 2 cores: at 500 checkouts/s, p99 1.0 s with 1 against a growing
    # backlog with 0 (the consumer starved of the GIL) and with 2 (one process too many).
    http_workers: int = 1
    # How long each kind of data is kept, and the width of the time partitions it is kept in
    # (old data goes by dropping whole partitions). The README's "How long data is kept"
    # explains each window; every one is in seconds so that tests can compress a day.
    inbox_retention_s: float = 3600.0
    inbox_partition_s: float = 300.0
    outbox_partition_s: float = 60.0
    archive_after_s: float = 300.0
    archive_retention_s: float = 86400.0
    archive_partition_s: float = 21600.0
    steps_partition_s: float = 3600.0

    @property
    def stale_after_s(self) -> float:
        """Events older than this may concern records that are gone: never applied again."""
        return self.archive_after_s + self.archive_retention_s

    def dsn(self, service: str) -> str:
        try:
            return self.db_dsns[service]
        except KeyError:
            raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}") from None


# Each partition is a table: a retention of thousands of partitions would slow every query
# that reads across them (and the catalog).
_MAX_PARTITIONS = 500


def _check_partitions(pairs: dict[str, tuple[float, float]]) -> None:
    for names, (retention, interval) in pairs.items():
        if retention / interval > _MAX_PARTITIONS:
            raise ValueError(
                f"{names} keep {retention / interval:.0f} partitions; keep the ratio under "
                f"{_MAX_PARTITIONS} (each partition is a table): raise the partition interval"
            )


def _stack_brokers(stack_dir: Path) -> int:
    """The broker count `saga stack up` recorded for this stack dir (1 if none)."""
    try:
        count = json.loads((stack_dir / "saga-stack.json").read_text()).get("kafka_brokers", 1)
    except (OSError, ValueError, AttributeError):
        return 1
    return count if count in (1, 3) else 1


def load_settings() -> Settings:
    stack_dir = Path(_env("SAGA_STACK_DIR", str(default_stack_dir())))
    kafka_port = _env_int("SAGA_KAFKA_PORT", DEFAULT_KAFKA_PORT)
    kafka_brokers = _env_int("SAGA_KAFKA_BROKERS", _stack_brokers(stack_dir))
    if kafka_brokers not in (1, 3):
        raise ValueError(f"SAGA_KAFKA_BROKERS={kafka_brokers} must be 1 or 3")
    # Broker i of the local stack listens on SAGA_KAFKA_PORT + 2 * (i - 1).
    local_bootstrap = ",".join(f"127.0.0.1:{kafka_port + 2 * i}" for i in range(kafka_brokers))
    pg_port = _env_int("SAGA_PG_PORT", DEFAULT_PG_PORT)
    dsns = {svc: _env(f"SAGA_{svc.upper()}_DB_DSN", local_dsn(svc, pg_port)) for svc in SERVICES}
    partitions = _env_int("SAGA_TOPIC_PARTITIONS", 4)
    if partitions < 1:
        raise ValueError(f"SAGA_TOPIC_PARTITIONS={partitions} must be at least 1")
    settings = Settings(
        stack_dir=stack_dir,
        kafka_port=kafka_port,
        kafka_controller_port=_env_int("SAGA_KAFKA_CONTROLLER_PORT", DEFAULT_KAFKA_CONTROLLER_PORT),
        pg_port=pg_port,
        kafka_bootstrap_servers=_env("SAGA_KAFKA_BOOTSTRAP_SERVERS", local_bootstrap),
        kafka_brokers=kafka_brokers,
        db_dsns=dsns,
        topic_partitions=partitions,
        http_host=_env("SAGA_HTTP_HOST", "127.0.0.1"),
        http_port=_env_int("SAGA_HTTP_PORT", 8080),
        log_format=log_format(),
        log_level=log_level("INFO"),
        reservation_ttl_s=_env_float("SAGA_RESERVATION_TTL_S", 600.0),
        reaper_interval_s=_env_float("SAGA_REAPER_INTERVAL_S", 1.0),
        outbox_retention_s=_env_float("SAGA_OUTBOX_RETENTION_S", 600.0),
        batch_size=_env_int("SAGA_BATCH_SIZE", 500),
        pg_admin_dsn=_env("SAGA_PG_ADMIN_DSN", local_admin_dsn(pg_port)),
        cache_dir=Path(_env("SAGA_CACHE_DIR", str(default_cache_dir()))),
        http_rate_limit=_env_float("SAGA_HTTP_RATE_LIMIT", 2000.0),
        http_rate_burst=_env_int("SAGA_HTTP_RATE_BURST", 500),
        http_max_in_flight=_env_int("SAGA_HTTP_MAX_IN_FLIGHT", 5000),
        http_admission=_env_choice("SAGA_HTTP_ADMISSION", ("adaptive", "fixed"), "adaptive"),
        http_latency_target_s=_positive("SAGA_HTTP_LATENCY_TARGET_S", 1.0),
        http_min_in_flight=_env_int("SAGA_HTTP_MIN_IN_FLIGHT", 100),
        http_db_pool_size=_env_int("SAGA_HTTP_DB_POOL_SIZE", 2),
        http_workers=_env_int("SAGA_HTTP_WORKERS", 1),
        instance=_env("SAGA_INSTANCE", ""),
        instances=_env_int("SAGA_INSTANCES", 1),
        metrics_host=_env("SAGA_METRICS_HOST", "127.0.0.1"),
        metrics_port=_env_int("SAGA_METRICS_PORT", -1) if _env("SAGA_METRICS_PORT", "") else None,
        http_reuse_port=_env_bool("SAGA_HTTP_REUSE_PORT", False),
        inbox_retention_s=_positive("SAGA_INBOX_RETENTION_S", 3600.0),
        inbox_partition_s=_positive("SAGA_INBOX_PARTITION_S", 300.0),
        outbox_partition_s=_positive("SAGA_OUTBOX_PARTITION_S", 60.0),
        archive_after_s=_positive("SAGA_ARCHIVE_AFTER_S", 300.0),
        archive_retention_s=_positive("SAGA_ARCHIVE_RETENTION_S", 86400.0),
        archive_partition_s=_positive("SAGA_ARCHIVE_PARTITION_S", 21600.0),
        steps_partition_s=_positive("SAGA_STEPS_PARTITION_S", 3600.0),
        retry_forward=_retry("FORWARD", FORWARD),
        retry_compensation=_retry("COMPENSATION", COMPENSATION),
        crash_point=_env("SAGA_CRASH_POINT", ""),
    )
    s = settings
    if s.inbox_retention_s < 2 * s.inbox_partition_s:
        # The inbox vouches for events since now - retention + one partition: less than two
        # partitions of retention would vouch for nothing.
        raise ValueError(
            f"SAGA_INBOX_RETENTION_S={s.inbox_retention_s:g} must be at least twice "
            f"SAGA_INBOX_PARTITION_S={s.inbox_partition_s:g}"
        )
    _check_partitions(
        {
            "SAGA_INBOX_RETENTION_S / SAGA_INBOX_PARTITION_S": (
                s.inbox_retention_s,
                s.inbox_partition_s,
            ),
            "SAGA_OUTBOX_RETENTION_S / SAGA_OUTBOX_PARTITION_S": (
                s.outbox_retention_s,
                s.outbox_partition_s,
            ),
            "SAGA_ARCHIVE_RETENTION_S / SAGA_ARCHIVE_PARTITION_S": (
                s.archive_retention_s,
                s.archive_partition_s,
            ),
            "SAGA_ARCHIVE_RETENTION_S / SAGA_STEPS_PARTITION_S": (
                s.archive_after_s + s.archive_retention_s,
                s.steps_partition_s,
            ),
        }
    )
    return settings
