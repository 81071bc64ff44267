"""miaflow memory as a LangGraph store: the same scenarios run on LangGraph's own ``InMemoryStore`` and on
:class:`~miaflow.memory.lgstore.LangGraphStore` (Chroma on disk), then what only the miaflow store does:
durability, the trajectory store and Bi-Mem behind it, a compiled LangGraph graph that uses it through
``get_store()``, langmem's memory tools, and the README snippet."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from pathlib import Path
from typing import TypedDict

import pytest
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp
from langgraph.store.memory import InMemoryStore
from memory_helpers import make_traj

from miaflow.memory import TrajectoryStore, TrajectoryStoreConfig
from miaflow.memory.lgstore import LangGraphStore, namespace_from_miaflow, namespace_to_miaflow

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(params=["inmemory", "miaflow", "miaflow-server"])
def store(request, tmp_path, hash_embedder):
    """LangGraph's store and ours (on a Chroma folder and on a ``chroma run`` server), all with one embedder, so
    even search scores agree."""
    if request.param == "inmemory":
        return InMemoryStore(index={"dims": hash_embedder.dim, "embed": lambda t: hash_embedder.embed(t).tolist()})
    if request.param == "miaflow":
        return LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    host, port = request.getfixturevalue("chroma_server")
    config = TrajectoryStoreConfig(collection_prefix=f"lg{uuid.uuid4().hex[:8]}")  # namespaces of its own
    return LangGraphStore(TrajectoryStore(host=host, port=port, config=config, embedder=hash_embedder))


def _view(items):
    return [(tuple(i.namespace), i.key, i.value) for i in items]


# ---------------------------------------------------------------------------------------- shared scenarios
def test_put_get_update_delete(store):
    ns = ("users", "alice")
    assert store.get(ns, "missing") is None
    store.put(ns, "prefs", {"theme": "dark", "tags": ["a", "b"], "nested": {"x": 1}})
    item = store.get(ns, "prefs")
    assert (item.namespace, item.key, item.value) == (ns, "prefs", {"theme": "dark", "tags": ["a", "b"],
                                                                    "nested": {"x": 1}})
    assert 0 <= (item.updated_at - item.created_at).total_seconds() < 1
    store.put(ns, "prefs", {"theme": "light"})
    again = store.get(ns, "prefs")
    assert again.value == {"theme": "light"}
    assert again.updated_at >= item.updated_at and again.created_at >= item.created_at  # InMemoryStore resets both
    assert store.get(("users", "bob"), "prefs") is None  # namespaces never leak
    store.delete(ns, "prefs")
    assert store.get(ns, "prefs") is None
    store.delete(ns, "never-there")  # deleting a missing key is a no-op


def test_unranked_search_order_limit_offset(store):
    store.put(("docs", "b"), "1", {"n": 1})
    store.put(("docs", "a"), "2", {"n": 2})
    store.put(("docs", "b"), "3", {"n": 3})
    store.put(("docs", "b"), "1", {"n": 10})  # an update keeps its place
    store.put(("docs", "a"), "4", {"n": 4})
    store.delete(("docs", "a"), "2")
    store.put(("docs", "a"), "2", {"n": 20})  # deleted then written again: last
    got = [(i.namespace[-1], i.key, i.value["n"]) for i in store.search(("docs",))]
    assert got == [("b", "1", 10), ("b", "3", 3), ("a", "4", 4), ("a", "2", 20)]
    assert [i.key for i in store.search(("docs",), limit=2, offset=1)] == ["3", "4"]
    assert [i.key for i in store.search(("docs", "a"))] == ["4", "2"]
    assert store.search(("nothing",)) == []
    assert all(i.score is None for i in store.search(("docs",)))


def test_filters(store):
    ns = ("f",)
    store.put(ns, "a", {"n": 1, "tag": "x", "meta": {"lang": "en", "v": 1}, "list": [1, 2]})
    store.put(ns, "b", {"n": 5, "tag": "y", "meta": {"lang": "fr", "v": 1}, "list": [1]})
    store.put(ns, "c", {"n": 9, "tag": "x"})

    def keys(flt):
        return [i.key for i in store.search(ns, filter=flt)]

    assert keys({"tag": "x"}) == ["a", "c"]
    assert keys({"tag": {"$ne": "x"}}) == ["b"]
    assert keys({"n": {"$gt": 1}}) == ["b", "c"]
    assert keys({"n": {"$gte": 5, "$lt": 9}}) == ["b"]
    assert keys({"n": {"$lte": 5}, "tag": {"$eq": "x"}}) == ["a"]
    assert keys({"meta": {"lang": "fr"}}) == ["b"]
    assert keys({"list": [1, 2]}) == ["a"]
    assert keys({"missing": "z"}) == []


def test_ranked_search(store):
    ns = ("notes",)
    store.put(ns, "tea", {"text": "alice drinks green tea every morning"})
    store.put(ns, "chess", {"text": "bob plays chess on sunday"})
    store.put(ns, "bakery", {"text": "alice works at the bakery", "other": "tea"}, index=["text"])
    store.put(ns, "hidden", {"text": "green tea morning tea"}, index=False)
    res = store.search(ns, query="green tea in the morning")
    assert [i.key for i in res][0] == "tea" and res[-1].key == "hidden"  # no vector: after the ranked ones
    assert sorted(i.key for i in res) == ["bakery", "chess", "hidden", "tea"]
    scores = [i.score for i in res]
    assert scores[-1] is None and all(s is not None for s in scores[:-1])
    assert scores[0] > 0.5 and scores[:-1] == sorted(scores[:-1], reverse=True)
    second = res[1].key
    assert [i.key for i in store.search(ns, query="green tea in the morning", limit=1, offset=1)] == [second]
    hits = store.search(ns, query="chess", filter={"text": {"$ne": "x"}}, limit=2)
    assert len(hits) == 2 and hits[0].key == "chess"


def test_list_namespaces(store):
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "e"), ("x", "b", "c"), ("x",)]:
        store.put(ns, "k", {"v": 1})
    assert store.list_namespaces() == [("a", "b", "c"), ("a", "b", "d"), ("a", "e"), ("x",), ("x", "b", "c")]
    assert store.list_namespaces(prefix=("a",)) == [("a", "b", "c"), ("a", "b", "d"), ("a", "e")]
    assert store.list_namespaces(suffix=("c",)) == [("a", "b", "c"), ("x", "b", "c")]
    assert store.list_namespaces(prefix=("*", "b")) == [("a", "b", "c"), ("a", "b", "d"), ("x", "b", "c")]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "e"), ("x",), ("x", "b")]
    assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "e")]
    store.delete(("x",), "k")
    assert ("x",) in store.list_namespaces()  # as InMemoryStore: a namespace outlives its last item


def test_batch_reads_before_writes_and_last_put_wins(store):
    ns = ("b",)
    store.put(ns, "k", {"v": 0})
    got = store.batch([PutOp(ns, "k", {"v": 1}), GetOp(ns, "k"), PutOp(ns, "k", {"v": 2}),
                       SearchOp(ns, None, 10, 0, None), PutOp(ns, "new", {"v": 3})])
    assert got[0] is None and got[1].value == {"v": 0}
    assert [i.value for i in got[3]] == [{"v": 0}]
    assert store.get(ns, "k").value == {"v": 2} and store.get(ns, "new").value == {"v": 3}
    store.batch([PutOp(ns, "k", {"v": 4}), PutOp(ns, "k", None)])
    assert store.get(ns, "k") is None


def test_async_twins(store):
    async def run():
        await store.aput(("as",), "k", {"text": "async value"})
        item = await store.aget(("as",), "k")
        found = await store.asearch(("as",), query="async")
        spaces = await store.alist_namespaces()
        await store.adelete(("as",), "k")
        return item, found, spaces, await store.aget(("as",), "k")

    item, found, spaces, gone = asyncio.run(run())
    assert item.value == {"text": "async value"} and [i.key for i in found] == ["k"]
    assert spaces == [("as",)] and gone is None


def test_bad_namespaces_are_rejected(store):
    for ns in [(), ("a.b",), ("",), ("langgraph", "x")]:
        with pytest.raises((InvalidNamespaceError, ValueError)):
            store.put(ns, "k", {"v": 1})


def test_random_operations_agree_with_inmemorystore(tmp_path, hash_embedder):
    """A seeded stream of puts, deletes and reads gives the same answers on both stores (scores to 1e-4)."""
    ours = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    ref = InMemoryStore(index={"dims": hash_embedder.dim, "embed": lambda t: hash_embedder.embed(t).tolist()})
    rng = random.Random(7)
    words = "tea chess bakery river mountain green quiet loud red blue".split()
    spaces = [("u", "a"), ("u", "b"), ("v",), ("u", "a", "deep")]
    written: set[tuple[str, ...]] = set()
    for step in range(120):
        ns, key = rng.choice(spaces), f"k{rng.randrange(8)}"
        kind = rng.random()
        if kind < 0.45:
            value = {"text": " ".join(rng.sample(words, 3)), "n": rng.randrange(10), "step": step}
            for s in (ours, ref):
                s.put(ns, key, value)
            written.add(ns)
        elif kind < 0.6:
            for s in (ours, ref):
                s.delete(ns, key)
        elif kind < 0.75:
            a, b = ours.get(ns, key), ref.get(ns, key)
            assert (a and (a.key, a.value)) == (b and (b.key, b.value))
        elif kind < 0.9:
            kw = {"query": rng.choice([None, " ".join(rng.sample(words, 2))]), "limit": rng.randrange(1, 6),
                  "offset": rng.randrange(3), "filter": rng.choice([None, {"n": {"$gte": 5}}])}
            prefix = rng.choice([("u",), ("u", "a"), ("v",)])
            a, b = ours.search(prefix, **kw), ref.search(prefix, **kw)
            assert _view(a) == _view(b), (step, kw)
            assert [None if i.score is None else round(i.score, 4) for i in a] == [
                None if i.score is None else round(i.score, 4) for i in b]
        else:  # InMemoryStore also lists a namespace a get() looked into; compare written ones
            depth = rng.choice([None, 1, 2])
            want = sorted({ns[:depth] if depth else ns for ns in written})
            assert ours.list_namespaces(max_depth=depth) == want
            assert set(want) <= set(ref.list_namespaces(max_depth=depth))


# ---------------------------------------------------------------------------------------- miaflow only
def test_namespace_mapping_round_trips():
    from miaflow.memory._namespace import check_namespace

    cases = [("a",), ("users", "alice"), ("x", "y z", "ü"), ("_tmp", "="), ("0", "=41"), ("team/x", "a@b:c")]
    names = [namespace_to_miaflow(ns) for ns in cases]
    assert len(set(names)) == len(names)
    for ns, name in zip(cases, names, strict=True):
        assert check_namespace(name) == name and namespace_from_miaflow(name) == ns
    assert namespace_to_miaflow(("users", "alice")) == "users.alice"
    with pytest.raises(ValueError):
        namespace_to_miaflow(("a.b",))


def test_values_survive_a_reopen(tmp_path, hash_embedder):
    s1 = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    s1.put(("p",), "one", {"text": "first note", "n": 1})
    s1.put(("p",), "two", {"text": "second note", "n": 2})
    before = s1.get(("p",), "one")
    s1.trajectories.close()
    s2 = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    after = s2.get(("p",), "one")
    assert (after.value, after.created_at, after.updated_at) == (before.value, before.created_at, before.updated_at)
    assert [i.key for i in s2.search(("p",))] == ["one", "two"]
    assert s2.search(("p",), query="second note")[0].key == "two"


def test_odd_labels_get_their_own_collections(tmp_path, hash_embedder):
    s = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    spaces = [("_x",), ("x y",), ("x=20y",), ("ü", "b")]
    for i, ns in enumerate(spaces):
        s.put(ns, "k", {"i": i})
    assert [s.get(ns, "k").value["i"] for ns in spaces] == [0, 1, 2, 3]
    assert s.list_namespaces() == sorted(spaces)
    with pytest.raises(ValueError, match="at most"):
        s.put(("x" * 200,), "k", {"i": 0})


def test_values_must_be_json(tmp_path, hash_embedder):
    s = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    with pytest.raises(ValueError, match="JSON"):
        s.put(("p",), "k", {"when": object()})
    assert s.search(("p",)) == []


def test_trajectory_store_sees_items_and_items_see_records(tmp_path, hash_embedder):
    traj = TrajectoryStore(tmp_path / "mem", embedder=hash_embedder)
    s = LangGraphStore(traj)
    s.put(("team",), "m1", {"question": "Who founded the bakery on Elm street?", "answer": "Ada",
                            "judgement": "correct", "reward": 1.0})
    recall = traj.recall("Who founded the bakery on Elm street?", namespace="team")
    assert recall.ids == ["m1"] and recall.positive[0].record.answer == "Ada"
    traj.update_utilities("task-x", ["m1"], reward=1.0, namespace="team")
    assert s.get(("team",), "m1").value["answer"] == "Ada"  # the raw value, not the record view
    rid = traj.add(make_traj(1, "Which river flows through the capital?"))
    item = s.get(("default",), rid)
    assert item.value["question"] == "Which river flows through the capital?"
    assert item.value["judgement"] == "correct" and "q_value" in item.value
    assert ("default",) in s.list_namespaces()
    assert s.search(("default",), query="river capital")[0].key == rid
    s.put(("default",), rid, {"question": "Which river flows through the capital?", "answer": "new"})
    assert traj.get(rid, namespace="default")[0].answer == "new"
    assert traj.get(rid, namespace="default")[0].usage_count == 0
    s.delete(("default",), rid)
    assert traj.count("default") == 0


def test_a_record_the_agent_replaces_reads_as_the_new_record(tmp_path, hash_embedder):
    traj = TrajectoryStore(tmp_path / "mem", embedder=hash_embedder)
    s = LangGraphStore(traj)
    s.put(("default",), "m1", {"question": "Who wrote the harbour song?", "note": "first guess"})
    kept = traj.add(make_traj(1, "Who wrote the harbour song?", answer="Mira"))  # near-duplicate: replaces
    assert kept == "m1"
    value = s.get(("default",), "m1").value
    assert value["answer"] == "Mira" and "note" not in value
    assert s.search(("default",), query="harbour song")[0].value["answer"] == "Mira"


def test_conversation_namespaces_feed_bimem(tmp_path, hash_embedder):
    from miaflow.memory.bimem import BiMemory
    from miaflow.memory.embeddings import ChromaEmbeddingFunction

    class Hashing(type(hash_embedder)):
        def as_chroma(self):
            return ChromaEmbeddingFunction(self)

    bimem = BiMemory(tmp_path / "bimem", embedder=Hashing())
    s = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder), bimem=bimem)
    ns = ("conversations", "c1")
    s.put(ns, "t1", {"speaker": "Ann", "text": "I adopted a grey cat named Pixel last spring."})
    s.put(ns, "t2", {"speaker": "Bo", "text": "My brother moved to Lisbon for a new job."})
    s.put(ns, "t3", {"role": "Ann", "content": "Pixel loves sleeping on the warm laptop."})
    s.put(ns, "note", {"kind": "not a message"})
    assert [t.id for t in bimem.turns("c1")] == ["t1", "t2", "t3"]
    res = s.search(ns, query="what is the name of the cat?")
    assert res[0].key in {"t1", "t3"} and res[0].score is not None
    assert {i.key for i in res} == {"t1", "t2", "t3", "note"}
    s.put(ns, "t2", {"speaker": "Bo", "text": "My sister moved to Porto."})
    s.delete(ns, "t1")
    turns = {t.id: t.text for t in bimem.turns("c1")}
    assert turns == {"t2": "My sister moved to Porto.", "t3": "Pixel loves sleeping on the warm laptop."}
    assert s.get(ns, "t1") is None and ns in s.list_namespaces()

    # a conversation Bi-Mem holds already reads through the store, and writes reach it
    bimem.add_messages("c2", [{"id": "x1", "speaker": "Cy", "text": "We hiked the Rota Vicentina in May."},
                              {"id": "x2", "speaker": "Di", "text": "My cousin bakes sourdough bread."}])
    ns2 = ("conversations", "c2")
    assert ns2 in s.list_namespaces(prefix=("conversations",))
    assert s.get(ns2, "x1").value == {"speaker": "Cy", "text": "We hiked the Rota Vicentina in May.", "time": "",
                                      "session": 0}
    assert s.search(ns2, query="who bakes bread?")[0].key == "x2"
    s.put(ns2, "x1", {"speaker": "Cy", "text": "We hiked in June."})
    s.delete(ns2, "x2")
    assert {t.id: t.text for t in bimem.turns("c2")} == {"x1": "We hiked in June."}
    assert [i.key for i in s.search(ns2)] == ["x1"]


class _State(TypedDict, total=False):
    user: str
    note: str
    seen: list[str]


def _memory_graph(store):
    from langgraph.config import get_store
    from langgraph.graph import END, START, StateGraph

    def remember(state: _State) -> _State:
        mem = get_store()
        ns = ("users", state["user"])
        seen = [i.value["note"] for i in mem.search(ns)]
        mem.put(ns, f"n{len(seen)}", {"note": state["note"]})
        return {"seen": seen}

    g = StateGraph(_State)
    g.add_node("remember", remember)
    g.add_edge(START, "remember")
    g.add_edge("remember", END)
    return g.compile(store=store)


def test_compiled_graph_reads_and_writes_memory_across_invocations(tmp_path, hash_embedder):
    store = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    graph = _memory_graph(store)
    assert graph.invoke({"user": "alice", "note": "likes tea"})["seen"] == []
    assert graph.invoke({"user": "alice", "note": "works nights"})["seen"] == ["likes tea"]
    assert graph.invoke({"user": "bob", "note": "plays chess"})["seen"] == []
    store.trajectories.close()  # a new process: the memory is on disk
    again = _memory_graph(LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder)))
    assert again.invoke({"user": "alice", "note": "x"})["seen"] == ["likes tea", "works nights"]


def test_async_graph_uses_the_async_twins(tmp_path, hash_embedder):
    from langgraph.graph import END, START, StateGraph

    async def remember(state: _State, *, store) -> _State:  # the store injected by LangGraph
        ns = ("users", state["user"])
        seen = [i.value["note"] for i in await store.asearch(ns, query=state["note"])]
        await store.aput(ns, f"n{len(seen)}", {"note": state["note"]})
        return {"seen": seen}

    g = StateGraph(_State)
    g.add_node("remember", remember)
    g.add_edge(START, "remember")
    g.add_edge("remember", END)
    graph = g.compile(store=LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder)))

    async def run():
        await graph.ainvoke({"user": "cy", "note": "green tea"})
        return await graph.ainvoke({"user": "cy", "note": "tea"})

    assert asyncio.run(run())["seen"] == ["green tea"]


def test_langmem_tools_work_unchanged(tmp_path, hash_embedder):
    langmem = pytest.importorskip("langmem", reason="langmem is not installed")
    from langgraph.graph import END, START, StateGraph

    manage = langmem.create_manage_memory_tool(namespace=("memories", "alice"))
    search = langmem.create_search_memory_tool(namespace=("memories", "alice"))

    class S(TypedDict, total=False):
        out: list

    def node(state: S) -> S:
        manage.invoke({"content": "Alice prefers green tea", "action": "create"})
        manage.invoke({"content": "Alice lives in Porto", "action": "create"})
        return {"out": search.invoke({"query": "alice green tea", "limit": 1})}

    g = StateGraph(S)
    g.add_node("node", node)
    g.add_edge(START, "node")
    g.add_edge("node", END)
    store = LangGraphStore(TrajectoryStore(tmp_path / "mem", embedder=hash_embedder))
    out = g.compile(store=store).invoke({})["out"]
    assert "green tea" in str(out)
    stored = store.search(("memories", "alice"))
    assert sorted(i.value["content"] for i in stored) == ["Alice lives in Porto", "Alice prefers green tea"]
    porto = next(i.key for i in stored if "Porto" in i.value["content"])

    def forget(state: S) -> S:
        manage.invoke({"action": "update", "id": porto, "content": "Alice lives in Lisbon"})
        return {"out": search.invoke({"query": "where does alice live", "limit": 5})}

    g2 = StateGraph(S)
    g2.add_node("forget", forget)
    g2.add_edge(START, "forget")
    g2.add_edge("forget", END)
    out = g2.compile(store=store).invoke({})["out"]
    assert "Lisbon" in str(out) and "Porto" not in str(out)
    assert store.get(("memories", "alice"), porto).value["content"] == "Alice lives in Lisbon"


@pytest.mark.slow
def test_readme_snippet_runs(tmp_path, monkeypatch, capsys):
    """The README's snippet, as written: the bundled embedder, a folder on disk, a compiled graph."""
    text = README.read_text()
    m = re.search(r"<!-- langgraph-store:start -->\s*```python\n(.*?)```\s*<!-- langgraph-store:end -->", text, re.S)
    assert m, "README has no LangGraph Store snippet between the markers"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(m.group(1), "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    assert (tmp_path / "memories").is_dir()
    assert capsys.readouterr().out.strip() == "['Alice drinks green tea']"  # what the README says it prints
