"""The provider metadata is valid for Airflow and lists only what exists."""

from __future__ import annotations

import importlib
import json
from importlib.metadata import entry_points, metadata
from pathlib import Path
from typing import Any

import airflow
import jsonschema
import pytest

from airflow_provider_runloop.get_provider_info import get_provider_info

AIRFLOW_DIR = Path(airflow.__file__).parent


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((AIRFLOW_DIR / name).read_text())
    return schema


def test_matches_airflows_provider_info_schema() -> None:
    jsonschema.validate(get_provider_info(), _schema("provider_info.schema.json"))


def test_connection_form_matches_provider_yaml_schema() -> None:
    # provider_info.schema.json does not describe conn-fields; provider.yaml's schema does.
    item_schema = _schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    for connection_type in get_provider_info()["connection-types"]:
        jsonschema.validate(connection_type, item_schema)


def test_entry_point_points_at_get_provider_info() -> None:
    (entry,) = [
        e
        for e in entry_points(group="apache_airflow_provider")
        if e.value.startswith("airflow_provider_runloop")
    ]
    assert entry.load() is get_provider_info


def test_listed_modules_and_classes_exist() -> None:
    info = get_provider_info()
    modules = [
        m
        for key in ("hooks", "sensors", "operators", "triggers")
        for group in info.get(key, [])
        for m in group["python-modules"]
    ]
    assert "airflow_provider_runloop.hooks.runloop" in modules
    for module in modules:
        importlib.import_module(module)
    dotted = [c["hook-class-name"] for c in info["connection-types"]] + info.get("extra-links", [])
    for path in dotted:
        module, _, name = path.rpartition(".")
        assert hasattr(importlib.import_module(module), name), path


@pytest.mark.parametrize("field", ["timeout", "connect_timeout", "max_retries", "verify_ssl"])
def test_every_connection_extra_the_hook_reads_is_in_the_form(field: str) -> None:
    (conn,) = get_provider_info()["connection-types"]
    assert field in conn["conn-fields"]


def test_registered_with_the_providers_manager() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    runtime = ProvidersManagerTaskRuntime()
    assert "airflow-provider-runloop" in runtime.providers
    hook = runtime.hooks["runloop"]
    assert hook is not None
    assert hook.hook_class_name == "airflow_provider_runloop.hooks.runloop.RunloopHook"
    assert hook.connection_id_attribute_name == "runloop_conn_id"
    # The UI side (api-server) reads the declared form without importing the hook.
    assert ProvidersManager().field_behaviours["runloop"]["relabeling"]["password"] == "API key"


def test_airflow_shows_the_documentation_url_of_the_project_urls() -> None:
    # Airflow fills the provider's "documentation-url" from the package's "Documentation" Project-URL
    # ([project.urls] in pyproject.toml), overwriting whatever get_provider_info() returns.
    from airflow.providers_manager import ProvidersManager

    urls = dict(
        entry.split(", ", 1) for entry in metadata("airflow-provider-runloop").get_all("Project-URL") or []
    )
    assert urls["Documentation"].startswith("https://")
    provider = ProvidersManager().providers["airflow-provider-runloop"]
    assert provider.data["documentation-url"] == urls["Documentation"]
