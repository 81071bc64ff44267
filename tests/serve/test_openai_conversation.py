"""``miaflow serve`` uses the whole conversation an OpenAI client sends: the earlier turns are the planner's context,
and with memory on they are kept in Bi-Mem (each turn once, however often the client resends it), which brings
back older turns the recent window no longer shows."""

from __future__ import annotations

import openai
import pytest
from serve_helpers import scripted

MODEL = "miaflow-research"


class RecordingModel:
    """The scripted model, keeping every planner prompt."""

    def __init__(self):
        from miaflow.testing import FakeChatModel

        self.plans: list[str] = []

        def reply(messages, cfg):  # noqa: ANN001, ANN202
            text = messages[-1]["content"]
            if "numbered list" in text:
                self.plans.append(text)
            return scripted(messages, cfg)

        self.model = FakeChatModel(reply, name="scripted")


def _client(tiny_corpus, tmp_path, *, memory: bool):  # noqa: ANN001, ANN202
    from fastapi.testclient import TestClient

    from miaflow.serve import AgentConfig, ResearchAgent, build_openai_app

    rec = RecordingModel()
    agent = ResearchAgent(AgentConfig(corpus=str(tiny_corpus), state=str(tmp_path / "state"), memory=memory),
                          model=rec.model)
    http = TestClient(build_openai_app(agent))
    http.__enter__()
    client = openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)
    return client, agent, rec, http


@pytest.fixture
def with_memory(tiny_corpus, tmp_path):  # noqa: ANN001, ANN201
    client, agent, rec, http = _client(tiny_corpus, tmp_path, memory=True)
    yield client, agent, rec
    http.__exit__(None, None, None)
    agent.close()


def _ask(client, messages, **extra):  # noqa: ANN001, ANN003, ANN202
    res = client.chat.completions.create(model=MODEL, messages=messages, **extra)
    return res.choices[0].message.content


def test_follow_up_sees_the_earlier_turns_and_bimem_keeps_each_turn_once(with_memory) -> None:  # noqa: ANN001
    from miaflow.serve._conversation import conversation_id_of

    client, agent, rec = with_memory
    first = "Tell me about the supergroup Tinted Windows."
    a1 = _ask(client, [{"role": "system", "content": "Be brief."}, {"role": "user", "content": first}])
    assert "What we know about the user" not in rec.plans[-1]  # nothing earlier yet
    convo = [{"role": "user", "content": first}, {"role": "assistant", "content": a1},
             {"role": "user", "content": "Where was their first performance?"}]
    _ask(client, convo)
    prompt = " ".join(rec.plans[-1].split())
    assert f"user: {first}" in prompt and f"assistant: {a1}" in prompt
    assert "Where was their first performance?" in prompt

    cid = conversation_id_of(first)
    turns = agent.conversations.turns(cid)
    assert [t.id for t in turns] == ["m0", "m1", "m2", "m3"]  # two exchanges, stored once each
    assert turns[0].text == first and turns[2].text == "Where was their first performance?"

    # the client resends it all with one more question: only the new exchange is added
    _ask(client, [*convo, {"role": "assistant", "content": "Tulsa"}, {"role": "user", "content": "Who was in it?"}])
    assert [t.id for t in agent.conversations.turns(cid)] == ["m0", "m1", "m2", "m3", "m4", "m5"]


def test_older_turns_come_back_through_bimem(with_memory) -> None:  # noqa: ANN001
    client, agent, rec = with_memory
    old = "My favourite band is Tinted Windows, the supergroup."
    chatter = [{"role": "user", "content": old}, {"role": "assistant", "content": "Noted."}]
    for i in range(6):
        chatter += [{"role": "user", "content": f"Unrelated remark number {i} about the weather today."},
                    {"role": "assistant", "content": f"Reply {i}."}]
    _ask(client, [*chatter, {"role": "user", "content": "Where did my favourite band first perform?"}],
         extra_body={"conversation_id": "long-chat"})
    prompt = " ".join(rec.plans[-1].split())
    recent = prompt.index("user: Unrelated remark number 5")  # the recent window, in order, comes first
    assert prompt.index("assistant: Reply 5.") > recent
    # the first turn is too old for the window; Bi-Mem retrieved it for the question, after the window
    assert prompt.index("favourite band is Tinted Windows") > recent
    assert "long-chat" in agent.conversations.conversations()
    assert len(agent.conversations.turns("long-chat")) == len(chatter) + 2


def test_without_memory_the_request_turns_are_still_the_context(tiny_corpus, tmp_path) -> None:  # noqa: ANN001
    client, agent, rec, http = _client(tiny_corpus, tmp_path, memory=False)
    try:
        _ask(client, [{"role": "user", "content": "Tell me about Tinted Windows."},
                      {"role": "assistant", "content": "A supergroup."},
                      {"role": "user", "content": "Where did they first perform?"}], user="ann")
        prompt = " ".join(rec.plans[-1].split())
        assert "user: Tell me about Tinted Windows." in prompt and "assistant: A supergroup." in prompt
        assert not (tmp_path / "state" / "conversations").exists()  # nothing kept
    finally:
        http.__exit__(None, None, None)
        agent.close()


def test_bad_conversation_id_is_a_400(with_memory) -> None:  # noqa: ANN001
    client, _, _ = with_memory
    with pytest.raises(openai.BadRequestError) as err:
        _ask(client, [{"role": "user", "content": "Hi?"}], extra_body={"conversation_id": "  "})
    assert err.value.body["param"] == "conversation_id" and "non-empty" in err.value.body["message"]
