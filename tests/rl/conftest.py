import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def bundled_model_dir():
    from miaflow.llm.bundled import prepare_bundled_model

    try:
        return prepare_bundled_model()
    except Exception as e:  # the model package is part of `make setup`
        pytest.skip(f"bundled model unavailable: {e}")


def _make_group(gid, rewards=(1.0, 0.0, 0.5, 0.0), role="planner", question="Who wrote Hamlet?"):
    from miaflow.rl import ExperienceGroup

    n = len(rewards)
    return ExperienceGroup(
        group_id=gid,
        role=role,
        prompt=[{"role": "system", "content": "You plan research."}, {"role": "user", "content": question}],
        completions=[f"1. Search for {question} ({i})\n2. Read the best document" for i in range(n)],
        rewards=list(rewards),
        columns={"accuracy": [float(r >= 0.5) for r in rewards], "first_accuracy": [0.0] * n,
                 "replanned": [False] * n},
        metadata={"question": question},
    )


@pytest.fixture
def make_group():
    return _make_group
