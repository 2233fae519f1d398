"""Provider metadata for Airflow's providers manager (the ``apache_airflow_provider`` entry point).

The ``runloop`` connection form is declared here (``conn-fields`` and ``ui-field-behaviour``), so the
UI needs no hook import and no wtforms. Only modules that exist are listed.

What Airflow 3.3's form does with the declaration, and so why it reads as it does (``make ui-check``
proves each point in a browser):

* a standard field (``password``, ``host``) can only be hidden, relabelled or given a placeholder; the
  form cannot mark one required, so the API key's label says so and the hook refuses an empty key;
* a number field takes only ``minimum``/``maximum`` from its schema (clamping to them when it loses
  focus) and ignores ``exclusiveMinimum``: the timeouts' ``minimum`` of 1 is what keeps the form from
  saving ``0``, which the hook refuses;
* nor does it hold an ``integer`` field to whole numbers: ``2.5`` can be typed as *Max retries*, and the
  hook refuses it, naming the field, when the connection is read.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_runloop import __version__

__all__ = ["get_provider_info"]

_INTEGRATION = "Runloop"
# The hook takes any finite number of seconds above 0; the form's floor is a timeout that can work
# against a remote API (sub-second values still go in the extra's JSON).
_TIMEOUT_FLOOR_SECONDS = 1


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata in the shape of Airflow's ``provider_info.schema.json``."""
    return {
        "package-name": "airflow-provider-runloop",
        "name": "Runloop",
        "description": "Start, wait on (deferrably) and harvest `Runloop <https://runloop.ai>`__ "
        "benchmark runs and benchmark jobs.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": _INTEGRATION,
                "external-doc-url": "https://docs.runloop.ai/",
                "tags": ["software", "ai"],
            }
        ],
        "hooks": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_runloop.hooks.runloop"],
            }
        ],
        "operators": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_runloop.operators.runloop"],
            }
        ],
        "sensors": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": ["airflow_provider_runloop.sensors.runloop"],
            }
        ],
        "triggers": [
            {
                "integration-name": _INTEGRATION,
                "python-modules": [
                    "airflow_provider_runloop.triggers.runloop",
                    "airflow_provider_runloop.triggers.watch",
                ],
            }
        ],
        "extra-links": [
            "airflow_provider_runloop.links.RunloopBenchmarkRunLink",
            "airflow_provider_runloop.links.RunloopBenchmarkJobLink",
            "airflow_provider_runloop.links.RunloopResultsReportLink",
        ],
        "connection-types": [
            {
                "connection-type": "runloop",
                "hook-class-name": "airflow_provider_runloop.hooks.runloop.RunloopHook",
                "hook-name": "Runloop",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "Base URL", "password": "API key (required)"},
                    "placeholders": {
                        "host": "https://api.runloop.ai",
                        "password": "Runloop API key",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Read timeout (seconds)",
                        "description": "Read, write and pool timeout of each request; at least 1.",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 30,
                            "minimum": _TIMEOUT_FLOOR_SECONDS,
                        },
                    },
                    "connect_timeout": {
                        "label": "Connect timeout (seconds)",
                        "description": "Time to open a connection; at least 1.",
                        "schema": {
                            "type": ["number", "null"],
                            "default": 5,
                            "minimum": _TIMEOUT_FLOOR_SECONDS,
                        },
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "description": "Retries of a failed request (transport errors, 408, 409, 429, 5xx).",
                        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
                    },
                    "verify_ssl": {
                        "label": "Verify TLS certificates",
                        "schema": {"type": ["boolean", "null"], "default": True},
                    },
                    "http2": {
                        "label": "HTTP/2",
                        "description": (
                            "Empty: HTTP/2 over https (HTTP/1.1 if the server offers only that), "
                            "HTTP/1.1 over http. True over http: HTTP/2 from the first byte (h2c)."
                        ),
                        "schema": {"type": ["boolean", "null"], "default": None},
                    },
                },
            }
        ],
    }
