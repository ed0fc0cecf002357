"""Passwords out of what the stack prints: `saga stack status` shows DSNs, never secrets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_dsn"]

_MASK = "***"
# key=value conninfo ("host=db password=secret") and a URL's query (?password=secret).
_KEYWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """`dsn` with its password replaced by ***: postgresql://order_svc:***@host:5432/db."""
    if "://" not in dsn:
        return _KEYWORD.sub(rf"\g<1>{_MASK}", dsn)
    parts = urlsplit(dsn)
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        if ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            parts = parts._replace(netloc=f"{user}:{_MASK}@{host}")
    return _KEYWORD.sub(rf"\g<1>{_MASK}", urlunsplit(parts))
