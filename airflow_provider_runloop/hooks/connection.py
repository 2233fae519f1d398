"""Reading a ``runloop`` Airflow connection into client options, every problem named before any request.

The API key is the ``password`` (without the whitespace around it); the base URL the ``host`` (default
``https://api.runloop.ai``; a full URL is accepted, a bare host name means https; ``port`` is appended
when the host has none). Extras: ``timeout`` and ``connect_timeout`` (seconds, > 0), ``max_retries``
(a whole number >= 0), ``verify_ssl`` and ``http2`` (true/false; ``http2`` unset: HTTP/2 over https,
HTTP/1.1 over http). Messages name the field, never the key.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_runloop.client import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TIMEOUT,
    RetryPolicy,
    check_api_key,
)

__all__ = ["client_options"]


def client_options(conn_id: str, conn: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Client arguments from a connection; every problem is named before any request is made."""
    if not (conn.password or "").strip():
        raise ValueError(f"The Runloop connection {conn_id!r} has no API key: put it in the password field.")
    # Without the whitespace around it (a secrets file's trailing newline): that is what users mean.
    api_key = check_api_key(conn.password, source=f"the password field of the Runloop connection {conn_id!r}")
    base_url = (conn.host or "").strip() or DEFAULT_BASE_URL
    if conn.port and not _has_port(base_url):
        base_url = f"{base_url.rstrip('/')}:{conn.port}"
    base_url = _check_base_url(conn_id, base_url)
    max_retries = _extra_number(conn_id, extra, "max_retries", RetryPolicy.max_retries, integer=True)
    return {
        "api_key": api_key,
        "base_url": base_url,
        "timeout": _extra_number(conn_id, extra, "timeout", DEFAULT_TIMEOUT),
        "connect_timeout": _extra_number(conn_id, extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
        "retry": RetryPolicy(max_retries=int(max_retries)),
        "verify": _extra_bool(conn_id, extra, "verify_ssl", True),
        "http2": _extra_bool(conn_id, extra, "http2", None),
    }


def _has_port(url: str) -> bool:
    netloc = url.split("://", 1)[-1].split("/", 1)[0]
    return ":" in netloc.rsplit("]", 1)[-1]


def _extra_number(
    conn_id: str, extra: Mapping[str, Any], key: str, default: float, *, integer: bool = False
) -> float:
    value = extra.get(key)
    if value is None or value == "":
        return default
    number: float | None = None
    if not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            number = None
    # NaN and infinity parse as floats but make no timeout; 2.5 retries would silently become 2.
    valid = number is not None and math.isfinite(number) and number >= 0
    if integer:
        valid = valid and float(number or 0).is_integer()
    elif valid:
        valid = number != 0
    if not valid or number is None:
        kind = "a whole number >= 0" if integer else "a finite number of seconds > 0"
        raise ValueError(f"The Runloop connection {conn_id!r} extra {key!r} must be {kind}, got {value!r}")
    return int(number) if integer else number


_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")


def _check_base_url(conn_id: str, base_url: str) -> str:
    """The connection's base URL, if its host and port can be reached at all (checked before any DNS)."""
    url = base_url if "://" in base_url else f"https://{base_url}"
    problem = None
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number from 0 to 65535
    except ValueError:
        parts, port, problem = None, None, "its port is not a number from 1 to 65535"
    if parts is not None:
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https"):
            problem = "it must be an http:// or https:// URL"
        elif port == 0:
            problem = "its port is not a number from 1 to 65535"
        elif not (_HOST_NAME.fullmatch(host) or _is_ip_address(host)):
            problem = "its host name is not a valid DNS name or IP address"
    if problem is not None:
        raise ValueError(
            f"The Runloop connection {conn_id!r} host {base_url!r} is not a usable API URL: {problem}. "
            f"Give a URL such as {DEFAULT_BASE_URL!r} (the port may go in the port field)."
        )
    return base_url


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _extra_bool(conn_id: str, extra: Mapping[str, Any], key: str, default: bool | None) -> bool | None:
    value = extra.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"The Runloop connection {conn_id!r} extra {key!r} must be true or false, got {value!r}")
