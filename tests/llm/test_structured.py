"""Structured output: never raises on garbage, recovers what is recoverable."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from miaflow.llm.structured import ParseStats, extract_json, parse_as, parse_numbered_list


class Plan(BaseModel):
    steps: list[str]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_on_arbitrary_text(text):
    extract_json(text)
    parse_numbered_list(text)
    parse_as(text, Plan, stats=ParseStats())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=4),
       st.text(alphabet="abc xyz.!?\n", max_size=30), st.text(alphabet="abc xyz.!?\n", max_size=30),
       st.booleans())
def test_recovers_an_embedded_object(obj, before, after, fenced):
    body = json.dumps(obj)
    text = f"{before}```json\n{body}\n```{after}" if fenced else f"{before} {body} {after}"
    assert extract_json(text) == obj


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcdefgh XYZ", min_size=1, max_size=20).filter(lambda s: s.strip()),
                min_size=1, max_size=8), st.sampled_from(["{i}. ", "{i}) ", "Step {i}: ", "- "]))
def test_numbered_list_roundtrip(items, style):
    text = "Here is my plan:\n" + "\n".join(style.format(i=i + 1) + it for i, it in enumerate(items)) + "\nDone."
    assert parse_numbered_list(text) == [it.strip() for it in items]


def test_repairs_trailing_commas_and_validates():
    stats = ParseStats()
    plan = parse_as('I think {"steps": ["search", "read",],}', Plan, stats=stats)
    assert plan is not None and plan.steps == ["search", "read"]
    assert parse_as('{"stepz": 1}', Plan, stats=stats) is None
    assert parse_as("nothing", Plan, stats=stats) is None
    assert stats.snapshot() == {"ok": 1, "invalid": 1, "no_json": 1}
