"""Settings: defaults that reach the local stack, SAGA_* overrides, and one vocabulary of
variable names shared by the code, compose.yaml and its database init script."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from eventing import settings as settings_mod
from eventing.settings import SERVICES, load_settings, local_admin_dsn, local_dsn
from saga_cli import stack as stack_lib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite may run with SAGA_* set for a stack elsewhere: every test starts from none.
    for name in list(os.environ):
        if name.startswith("SAGA_"):
            monkeypatch.delenv(name)


def test_defaults_point_at_the_local_stack() -> None:
    s = load_settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert (s.kafka_port, s.kafka_controller_port, s.pg_port) == (19092, 19093, 15432)
    assert s.db_dsns == {svc: local_dsn(svc, 15432) for svc in SERVICES}
    assert s.pg_admin_dsn == "postgresql://postgres:postgres@127.0.0.1:15432/postgres"
    assert s.topic_partitions == 4
    assert s.stack_dir == settings_mod.default_stack_dir()
    assert s.cache_dir == settings_mod.default_cache_dir()
    assert stack_lib.kafka_is_local(s) and stack_lib.postgres_is_local(s)


def test_local_dsn_gives_each_service_its_own_role_and_database() -> None:
    assert local_dsn("order", 5) == "postgresql://order_svc:order_svc@127.0.0.1:5/order_db"
    assert local_admin_dsn(5) == "postgresql://postgres:postgres@127.0.0.1:5/postgres"


def test_ports_move_every_derived_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGA_KAFKA_PORT", "29092")
    monkeypatch.setenv("SAGA_PG_PORT", "25432")
    s = load_settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:29092"
    assert all(":25432/" in dsn for dsn in s.db_dsns.values())
    assert ":25432/" in s.pg_admin_dsn
    assert stack_lib.kafka_is_local(s) and stack_lib.postgres_is_local(s)


def test_external_servers_are_not_managed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGA_KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    for svc in SERVICES:
        monkeypatch.setenv(f"SAGA_{svc.upper()}_DB_DSN", f"postgresql://{svc}@db/{svc}")
    monkeypatch.setenv("SAGA_PG_ADMIN_DSN", "postgresql://admin@db/postgres")
    s = load_settings()
    assert s.kafka_bootstrap_servers == "kafka:9092"
    assert s.dsn("payment") == "postgresql://payment@db/payment"
    assert s.pg_admin_dsn == "postgresql://admin@db/postgres"
    assert not stack_lib.kafka_is_local(s)
    assert not stack_lib.postgres_is_local(s)


def test_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGA_PG_PORT", "")
    assert load_settings().pg_port == 15432


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAGA_PG_PORT", "five", "SAGA_PG_PORT='five' is not an integer"),
        ("SAGA_TOPIC_PARTITIONS", "0", "SAGA_TOPIC_PARTITIONS=0 must be at least 1"),
        ("SAGA_RESERVATION_TTL_S", "soon", "SAGA_RESERVATION_TTL_S='soon' is not a number"),
    ],
)
def test_bad_values_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_settings()


def test_unknown_service_is_named() -> None:
    with pytest.raises(ValueError, match="unknown service 'shipping'"):
        load_settings().dsn("shipping")


def test_compose_uses_only_variables_that_settings_reads() -> None:
    compose = (ROOT / "compose.yaml").read_text()
    source = Path(settings_mod.__file__).read_text()
    used = set(re.findall(r"\bSAGA_[A-Z_]+\b", compose))
    assert used, "compose.yaml configures the services through SAGA_* variables"
    dsn_vars = {f"SAGA_{svc.upper()}_DB_DSN" for svc in SERVICES}
    assert dsn_vars | {"SAGA_KAFKA_BOOTSTRAP_SERVERS"} <= used
    known = set(re.findall(r'"(SAGA_[A-Z_]+)"', source)) | dsn_vars
    assert used <= known, f"not read by eventing/settings.py: {sorted(used - known)}"


def test_compose_init_script_provisions_like_the_local_stack() -> None:
    script = (ROOT / "deploy" / "postgres-init.sql").read_text()
    for svc in SERVICES:
        role, db = f"{svc}_svc", f"{svc}_db"
        assert f"CREATE ROLE {role} LOGIN PASSWORD '{role}'" in script
        assert f"CREATE DATABASE {db} OWNER {role}" in script
        assert f"REVOKE ALL ON DATABASE {db} FROM PUBLIC" in script


def test_kafka_pom_matches_the_version_the_stack_runs() -> None:
    pom = (ROOT / "saga_cli" / "stack_files" / "pom.xml").read_text()
    assert f"<version>{stack_lib.KAFKA_VERSION}</version>" in pom


def test_a_three_broker_stack_is_reached_through_every_broker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "saga-stack.json").write_text('{"kafka_brokers": 3}')
    monkeypatch.setenv("SAGA_STACK_DIR", str(tmp_path))
    s = load_settings()
    assert s.kafka_brokers == 3
    assert s.kafka_bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096"
    monkeypatch.setenv("SAGA_KAFKA_BROKERS", "2")
    with pytest.raises(ValueError, match="SAGA_KAFKA_BROKERS=2 must be 1 or 3"):
        load_settings()


def test_retention_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGA_ARCHIVE_AFTER_S", "0")
    with pytest.raises(ValueError, match="SAGA_ARCHIVE_AFTER_S=0 must be a positive"):
        load_settings()
    monkeypatch.setenv("SAGA_ARCHIVE_AFTER_S", "60")
    monkeypatch.setenv("SAGA_INBOX_PARTITION_S", "1")
    with pytest.raises(ValueError, match="keep 3600 partitions"):
        load_settings()
