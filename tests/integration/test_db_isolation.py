"""Each service's role reaches its own database and no other: the database-per-service rule
is enforced by PostgreSQL, not only by convention."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventing.settings import SERVICES, Settings

pytestmark = pytest.mark.integration

PAIRS = [(s, o) for s in SERVICES for o in SERVICES if s != o]


def _dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


@pytest.mark.parametrize("service", SERVICES)
def test_role_connects_to_its_own_database(
    settings: Settings, stack: dict[str, Any], service: str
) -> None:
    dsn = settings.dsn(service)
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT current_user, current_database(), rolsuper FROM pg_roles "
            "WHERE rolname = current_user"
        ).fetchone()
    assert row == (conninfo_to_dict(dsn)["user"], _dbname(dsn), False)


@pytest.mark.parametrize(("service", "other"), PAIRS)
def test_role_is_refused_on_another_service_database(
    settings: Settings, stack: dict[str, Any], service: str, other: str
) -> None:
    trespass = make_conninfo(settings.dsn(service), dbname=_dbname(settings.dsn(other)))
    with pytest.raises(psycopg.OperationalError, match=r"permission denied|no pg_hba\.conf entry"):
        psycopg.connect(trespass, connect_timeout=5).close()


def test_admin_dsn_is_a_superuser(settings: Settings, stack: dict[str, Any]) -> None:
    with psycopg.connect(settings.pg_admin_dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    assert row == (True,)
