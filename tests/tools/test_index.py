import json
import os

import pytest

from miaflow.errors import CorpusError, ToolError
from miaflow.tools import CorpusIndex, IndexConfig, OpenDocumentTool, SearchTool, format_hits
from miaflow.tools.sample import sample_corpus_path, sample_questions


def test_search_finds_the_right_document_and_reopen_reuses_everything(corpus_dir, counting_embedder):
    idx = CorpusIndex.open(corpus_dir, embedder=counting_embedder)
    assert idx.index_dir == corpus_dir / ".miaflow-index"
    assert (idx.last_sync.added, idx.last_sync.reused, idx.last_sync.rebuilt) == (6, 0, "new index")
    assert len(counting_embedder.texts) == 6
    cases = {
        "how do plants turn sunlight into sugar": "science/photosynthesis.md",
        "Gutenberg movable type printing": "history/printing_press.txt",
        "ancient trade route between China and the Mediterranean": "history/silk_road.md",
        "lava and magma eruptions": "science/volcanoes.txt",
    }
    for query, want in cases.items():
        for mode in ("hybrid", "dense"):
            hits = idx.search(query, k=3, mode=mode)
            assert hits[0].doc_id == want, (query, mode, hits)
    hits = idx.search("sourdough starter yeast", k=10)
    assert hits[0].doc_id == "cooking.txt" and hits[0].bm25_rank == 1 and hits[0].dense_rank == 1
    assert len(hits) == 6 and len({h.doc_id for h in hits}) == 6
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert idx.search("Gutenberg", k=2, mode="bm25")[0].doc_id == "history/printing_press.txt"

    again = CorpusIndex.open(corpus_dir, embedder=counting_embedder)
    assert (again.last_sync.reused, again.last_sync.indexed, again.last_sync.passages_embedded) == (6, 0, 0)
    assert len(counting_embedder.texts) == 6 + 4 + 1  # since the build: the distinct queries above, once each
    assert again.search("photosynthesis chlorophyll", k=1)[0].doc_id == "science/photosynthesis.md"


def test_incremental_reindex_embeds_only_what_changed(corpus_dir, counting_embedder):
    CorpusIndex.open(corpus_dir, embedder=counting_embedder)
    counting_embedder.texts.clear()
    (corpus_dir / "science" / "volcanoes.txt").write_text(
        "Volcanoes on Io, a moon of Jupiter, erupt sulfur lava plumes hundreds of kilometres high.")
    (corpus_dir / "cooking.txt").unlink()
    (corpus_dir / "astronomy.md").write_text("# Comets\n\nA comet is an icy body that grows a tail near the Sun.")
    idx = CorpusIndex.open(corpus_dir, embedder=counting_embedder)
    s = idx.last_sync
    assert (s.added, s.changed, s.removed, s.reused) == (1, 1, 1, 4)
    assert len(counting_embedder.texts) == 2
    assert any("Io, a moon of Jupiter" in t for t in counting_embedder.texts)
    assert idx.search("sulfur plumes on a moon of Jupiter", k=1)[0].doc_id == "science/volcanoes.txt"
    assert idx.search("icy body with a tail", k=1)[0].doc_id == "astronomy.md"
    assert "cooking.txt" not in idx
    assert all(h.doc_id != "cooking.txt" for h in idx.search("sourdough bread", k=6))
    manifest = json.loads((corpus_dir / ".miaflow-index" / "manifest.json").read_text())
    assert manifest["complete"] and set(manifest["documents"]) == set(idx.ids)
    assert idx._collection.count() == 6


def test_interrupted_sync_is_recovered_from_chroma(corpus_dir, hash_embedder, tmp_path):
    index_dir = tmp_path / "idx"
    seen = []
    CorpusIndex.open(corpus_dir, index_dir, embedder=hash_embedder, config=IndexConfig(batch_size=4),
                     progress=lambda done, total: seen.append((done, total)))
    assert seen == [(4, 6), (6, 6)]
    mpath = index_dir / "manifest.json"
    data = json.loads(mpath.read_text())
    data["complete"] = False
    mpath.write_text(json.dumps(data))
    idx = CorpusIndex.open(corpus_dir, index_dir, embedder=hash_embedder)
    assert idx.last_sync.reused == 6 and idx.last_sync.indexed == 0
    # a different passage size means different vectors: everything is embedded again
    idx = CorpusIndex.open(corpus_dir, index_dir, embedder=hash_embedder, config=IndexConfig(passage_words=50))
    assert idx.last_sync.rebuilt and idx.last_sync.indexed == 6


def test_long_documents_are_split_into_passages(tmp_path, hash_embedder):
    corpus = tmp_path / "c"
    corpus.mkdir()
    filler = " ".join(f"filler{i}" for i in range(450))
    (corpus / "long.txt").write_text(filler + "\n\nThe treasure is buried under the old lighthouse.")
    (corpus / "short.txt").write_text("A short note about lighthouses.")
    idx = CorpusIndex.open(corpus, embedder=hash_embedder)
    assert idx.last_sync.passages_embedded == 4  # 200 + 200 + (50 filler words + the treasure), the note
    hit = idx.search("treasure buried lighthouse", k=1)[0]
    assert hit.doc_id == "long.txt" and "treasure" in hit.text and "filler0 " not in hit.text
    assert idx.open_document("long.txt").text.startswith("filler0")


def test_open_document_serves_only_indexed_ids(corpus_dir, hash_embedder, tmp_path):
    idx = CorpusIndex.open(corpus_dir, embedder=hash_embedder)
    assert idx.open_document("history/silk_road.md").title == "The Silk Road"
    assert idx.open_document("The Silk Road").id == "history/silk_road.md"  # by title
    assert idx.open_document(" 'history/silk_road.md' ").id == "history/silk_road.md"
    assert idx.open_document("./history/../history/silk_road.md").id == "history/silk_road.md"
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", corpus_dir / "late_link.txt")  # appears after indexing
    for bad in ["/etc/passwd", "../../../../etc/passwd", "history/../../secret.txt", str(tmp_path / "secret.txt"),
                "late_link.txt", "data.csv", ".hidden.md", ".miaflow-index/manifest.json", ""]:
        with pytest.raises(ToolError):
            idx.open_document(bad)
    with pytest.raises(ToolError, match="Did you mean"):
        idx.open_document("history/silk_road.txt")


def test_injected_instructions_cannot_make_tools_read_outside(corpus_dir, hash_embedder):
    idx = CorpusIndex.open(corpus_dir, embedder=hash_embedder)
    search, open_doc = SearchTool(idx), OpenDocumentTool(idx)
    hit = search("maintenance notice system note", k=1)[0]
    assert hit.doc_id == "notice.md" and "/etc/passwd" in hit.text
    # an agent that obeys the document tries every path it names; each is refused
    for target in ["/etc/passwd", "../../../../etc/shadow", "/root/.ssh/id_rsa", "etc/passwd"]:
        with pytest.raises(ToolError):
            open_doc(target)
    assert open_doc("notice.md").id == "notice.md"


def test_tools_have_names_descriptions_and_clamp_k(corpus_dir, hash_embedder):
    idx = CorpusIndex.open(corpus_dir, embedder=hash_embedder)
    search, open_doc = SearchTool(idx, default_k=2, max_k=4), OpenDocumentTool(idx)
    assert (search.name, open_doc.name) == ("search", "open_document")
    assert "search(query" in search.description and "open_document(doc_id)" in open_doc.description
    assert len(search("volcano")) == 2 and len(search("volcano", k=100)) == 4 and len(search("volcano", k="3")) == 3
    with pytest.raises(ToolError):
        search("   ")
    with pytest.raises(ToolError):
        search("volcano", k="many")
    with pytest.raises(ToolError):
        open_doc(None)
    text = format_hits(search("volcano", k=2), max_chars=40)
    assert text.startswith("[1] science/volcanoes.txt") and "..." in text


def test_missing_and_empty_corpus_errors(tmp_path, hash_embedder):
    with pytest.raises(CorpusError, match="not found"):
        CorpusIndex.open(tmp_path / "missing", embedder=hash_embedder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="empty"):
        CorpusIndex.open(tmp_path / "empty", embedder=hash_embedder)


def test_sample_corpus_index_location_and_retrieval(tmp_path, hash_embedder, monkeypatch):
    monkeypatch.setenv("MIAFLOW_CACHE", str(tmp_path / "cache"))
    idx = CorpusIndex.open(sample_corpus_path(), embedder=hash_embedder)
    assert idx.index_dir.is_relative_to(tmp_path / "cache")  # never written inside the package
    assert len(idx) == 300
    qs = sample_questions()
    found = sum(s in {h.doc_id for h in idx.search(q.question, k=10, mode="bm25")} for q in qs
                for s in q.supporting_ids)
    assert found / sum(len(q.supporting_ids) for q in qs) > 0.6


def test_concurrent_opens_of_one_corpus_take_turns(corpus_dir, hash_embedder):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: CorpusIndex.open(corpus_dir, embedder=hash_embedder), range(2))
    assert sorted([a.last_sync.added, b.last_sync.added]) == [0, 6]
    assert sorted([a.last_sync.reused, b.last_sync.reused]) == [0, 6]
    assert a.search("volcano lava", k=1)[0].doc_id == b.search("volcano lava", k=1)[0].doc_id
