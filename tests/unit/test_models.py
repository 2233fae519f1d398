"""The list envelopes: a page is whole (its items and has_more) or it does not parse."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_runloop.models import (
    BenchmarkJobList,
    BenchmarkList,
    BenchmarkRunList,
    ListView,
    ScenarioRunList,
)

ENVELOPES: list[type[ListView[Any]]] = [ScenarioRunList, BenchmarkRunList, BenchmarkList, BenchmarkJobList]
ITEM = {
    ScenarioRunList: {"id": "scr_1", "scenario_id": "scn_1", "state": "completed"},
    BenchmarkRunList: {"id": "bmr_1", "state": "running"},
    BenchmarkList: {"id": "bmd_1", "name": "b"},
    BenchmarkJobList: {"id": "bmj_1", "state": "queued"},
}
# What may come beside the required keys: the optional count, fields the spec may add, old fields.
extras = st.dictionaries(
    st.sampled_from(["total_count", "remaining_count", "next_cursor", "object"]),
    st.integers(min_value=0, max_value=10**6) | st.none(),
    max_size=3,
)


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: e.__name__)
@given(has_more=st.booleans(), count=st.integers(min_value=0, max_value=3), extra=extras)
def test_a_whole_page_parses(
    envelope: type[ListView[Any]], has_more: bool, count: int, extra: dict[str, Any]
) -> None:
    items = [ITEM[envelope]] * count
    page = envelope.model_validate_json(
        json.dumps({**extra, envelope.items_key: items, "has_more": has_more})
    )
    assert (len(page.items), page.has_more) == (count, has_more)


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: e.__name__)
@given(
    drop=st.sampled_from(["items", "has_more", "both"]),
    has_more=st.booleans(),
    extra=extras,
)
def test_a_page_without_its_items_or_has_more_never_parses(
    envelope: type[ListView[Any]], drop: str, has_more: bool, extra: dict[str, Any]
) -> None:
    page: dict[str, Any] = {**extra, envelope.items_key: [ITEM[envelope]], "has_more": has_more}
    if drop in ("items", "both"):
        del page[envelope.items_key]
    if drop in ("has_more", "both"):
        del page["has_more"]
    with pytest.raises(pydantic.ValidationError):
        envelope.model_validate_json(json.dumps(page))


@pytest.mark.parametrize("envelope", ENVELOPES, ids=lambda e: e.__name__)
@pytest.mark.parametrize("value", [None, {}, "[]", 0])
def test_items_that_are_not_a_list_never_parse(envelope: type[ListView[Any]], value: Any) -> None:
    with pytest.raises(pydantic.ValidationError):
        envelope.model_validate_json(json.dumps({envelope.items_key: value, "has_more": False}))
