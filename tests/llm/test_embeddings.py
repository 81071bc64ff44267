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
