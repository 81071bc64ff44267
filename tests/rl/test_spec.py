"""SessionSpec: one owner per shared setting, derived values, contradictions refused at construction."""

import pytest

from miaflow.agents import PlannerConfig
from miaflow.rl import ConsolidationConfig, GRPOSettings
from miaflow.workflows import ResearchConfig, SessionConfig, SessionSpec, build_session


def test_group_size_adapter_and_judge_are_derived_from_one_owner():
    spec = SessionSpec(session=SessionConfig(group_size=3, learn=True, judge="llm"))
    assert spec.grpo is not None and spec.grpo.num_generations == 3
    assert spec.consolidation.group_size == 3
    assert spec.planner_adapter == "planner"
    assert spec.research.planner_adapter == spec.research.planner.adapter == "planner"
    assert spec.research.judge.without_gold == "evaluators"
    # without learning nothing trains: no GRPO settings, no adapter unless the research settings name one
    plain = SessionSpec(session=SessionConfig(group_size=1, judge="vote"),
                        research=ResearchConfig(planner=PlannerConfig(adapter="mine")))
    assert plain.grpo is None and plain.research.planner_adapter == "mine" == plain.research.planner.adapter
    assert plain.research.judge.without_gold == "none"
    with pytest.raises(Exception):  # noqa: B017 (frozen)
        spec.use_memory = False  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "fields"), [
    ({"session": SessionConfig(group_size=3, learn=True), "grpo": GRPOSettings(num_generations=4)},
     ("grpo.num_generations=4", "session.group_size=3")),
    ({"session": SessionConfig(group_size=1, learn=True)}, ("session.group_size=1", "grpo.num_generations")),
    ({"session": SessionConfig(group_size=3), "consolidation": ConsolidationConfig(group_size=5)},
     ("consolidation.group_size=5", "session.group_size=3")),
    ({"research": ResearchConfig(planner_adapter="a", planner=PlannerConfig(adapter="b"))},
     ("research.planner_adapter='a'", "research.planner.adapter='b'")),
    ({"session": SessionConfig(remember=True), "use_memory": False}, ("session.remember", "use_memory")),
    ({"session": SessionConfig(remember=False, consolidate_every=2), "use_memory": False},
     ("session.consolidate_every=2", "use_memory")),
])
def test_contradictions_fail_at_construction_naming_both_fields(kwargs, fields):
    with pytest.raises(ValueError) as err:
        SessionSpec(**kwargs)
    for f in fields:
        assert f in str(err.value)


def test_matching_settings_are_accepted_and_spec_and_parts_do_not_mix(tmp_path):
    spec = SessionSpec(session=SessionConfig(group_size=3, learn=True),
                       grpo=GRPOSettings(num_generations=3, learning_rate=5e-4))
    assert spec.grpo.learning_rate == 5e-4
    old = SessionSpec.from_parts(config=SessionConfig(group_size=2), use_memory=False)
    assert old.session.remember is False  # a session without memory remembers nothing, as before
    with pytest.raises(ValueError, match="either spec or the separate settings"):
        build_session(tmp_path, tmp_path / "s", spec, config=SessionConfig(), chat=object(), index=object())


def test_session_cli_options_are_documented_once_on_the_settings():
    from dataclasses import fields

    import typer.main

    from miaflow.cli import app

    cmd = typer.main.get_command(app).commands["session"]  # type: ignore[attr-defined]
    params = {p.name: p for p in cmd.params}
    for f in fields(SessionConfig):
        if f.name in ("learn", "judge", "epochs", "group_size", "finish_training"):
            assert params[f.name].help == f.metadata["help"] and params[f.name].default == f.default
