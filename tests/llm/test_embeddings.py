"""The bundled embedder, offline."""

from __future__ import annotations

import os

import numpy as np


def test_embedder_offline_dimension_and_similarity():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    from miaflow.memory.embeddings import default_embedder

    emb = default_embedder()
    v = emb.embed(["A cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly tax filings are due in April."])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2


def test_chroma_embedding_function_roundtrip(tmp_path):
    from miaflow.memory._chroma import open_client
    from miaflow.memory.embeddings import ChromaEmbeddingFunction

    client = open_client(tmp_path / "db")
    col = client.get_or_create_collection("emb-test", embedding_function=ChromaEmbeddingFunction(),
                                          metadata={"hnsw:space": "cosine"})
    col.add(ids=["a", "b"], documents=["The Eiffel Tower is in Paris.", "Bananas are yellow fruit."])
    res = col.query(query_texts=["Which city has the Eiffel Tower?"], n_results=1)
    assert res["ids"][0] == ["a"]


def test_query_cache_returns_identical_vectors_and_stays_bounded():
    from miaflow.memory.embeddings import Embedder

    emb = Embedder(query_cache_size=3)
    calls = []
    encode = emb._encode
    emb._encode = lambda texts: calls.append(list(texts)) or encode(texts)  # count the real encodes
    first = emb.embed(["Which city has the Eiffel Tower?"])
    again = emb.embed(["Which city has the Eiffel Tower?"])
    assert np.array_equal(first, again) and len(calls) == 1
    again[0, :] = 0.0  # callers get copies: the cached vector is untouched
    assert np.array_equal(emb.embed_one("Which city has the Eiffel Tower?"), first[0]) and len(calls) == 1
    for q in ["q one", "q two", "q three", "q four"]:
        emb.embed([q])
    assert emb.cache_info() == {"size": 3, "max_size": 3}
    emb.embed(["q two"])  # most recently used: kept when the next one comes in
    emb.embed(["q five"])
    n = len(calls)
    emb.embed(["q two"])
    assert len(calls) == n
    emb.embed(["q three"])  # the least recently used was evicted
    assert len(calls) == n + 1
    # batches do not go through the cache, and agree with the cached singles
    batch = emb.embed(["Which city has the Eiffel Tower?", "q two"])
    assert np.allclose(batch[0], first[0], atol=1e-5)
    assert emb.cache_info()["size"] == 3
    off = Embedder(query_cache_size=0)
    off.embed(["Which city has the Eiffel Tower?"])
    assert off.cache_info()["size"] == 0
