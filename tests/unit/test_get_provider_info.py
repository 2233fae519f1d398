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
from airflow_provider_runloop.hooks.runloop import RunloopHook

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
    assert ProvidersManager().field_behaviours["runloop"]["relabeling"]["password"] == "API key (required)"


def _form() -> dict[str, Any]:
    (conn,) = get_provider_info()["connection-types"]
    form: dict[str, Any] = conn
    return form


def test_the_api_key_is_labelled_required() -> None:
    # Airflow's form cannot mark a standard field required (it may only hide, relabel or add a
    # placeholder), so the label carries it; the hook refuses an empty key.
    behaviour = _form()["ui-field-behaviour"]
    assert behaviour["relabeling"]["password"] == "API key (required)"
    assert "password" not in behaviour["hidden-fields"]


def test_no_field_declares_a_bound_the_form_ignores() -> None:
    # Airflow 3.3's number field reads minimum/maximum only; an exclusive bound would be a promise the
    # form does not keep.
    for name, field in _form()["conn-fields"].items():
        assert not {"exclusiveMinimum", "exclusiveMaximum"} & set(field["schema"]), name


def _schema_allows(field: str, value: object) -> bool:
    try:
        jsonschema.validate(value, _form()["conn-fields"][field]["schema"])
    except jsonschema.ValidationError:
        return False
    return True


def _hook_accepts(monkeypatch: pytest.MonkeyPatch, field: str, value: object) -> bool:
    conn = {"conn_type": "runloop", "password": "rl_form_check_key", "extra": {field: value}}
    monkeypatch.setenv("AIRFLOW_CONN_RUNLOOP_FORM_CHECK", json.dumps(conn))
    hook = RunloopHook(runloop_conn_id="runloop_form_check")
    try:
        hook.get_conn()
    except ValueError:
        return False
    finally:
        hook.close()
    return True


@pytest.mark.parametrize(
    ("field", "value", "schema_allows", "hook_accepts"),
    [
        pytest.param("timeout", 0, False, False, id="timeout-0"),
        pytest.param("timeout", -1, False, False, id="timeout-negative"),
        pytest.param("timeout", 0.5, False, True, id="timeout-below-the-form-floor"),
        pytest.param("timeout", 1, True, True, id="timeout-floor"),
        pytest.param("timeout", 30, True, True, id="timeout-default"),
        pytest.param("timeout", None, True, True, id="timeout-empty"),
        pytest.param("connect_timeout", 0, False, False, id="connect-timeout-0"),
        pytest.param("connect_timeout", 1, True, True, id="connect-timeout-floor"),
        pytest.param("max_retries", 0, True, True, id="retries-off"),
        pytest.param("max_retries", -1, False, False, id="retries-negative"),
        pytest.param("max_retries", 2.5, False, False, id="retries-fraction"),
        pytest.param("verify_ssl", False, True, True, id="verify-off"),
    ],
)
def test_the_schema_allows_nothing_the_hook_refuses(
    monkeypatch: pytest.MonkeyPatch, field: str, value: object, schema_allows: bool, hook_accepts: bool
) -> None:
    assert _schema_allows(field, value) is schema_allows
    assert _hook_accepts(monkeypatch, field, value) is hook_accepts


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
