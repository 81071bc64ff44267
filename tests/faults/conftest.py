"""Fixtures of the fault-injection suite: a fast hashing embedder, a 1,100-record trajectory store built once (so
its vectors reach the HNSW files on disk) and copied for each test, and a tiny corpus with a scripted model."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "memory"))

from _stores import N_RECORDS, question  # noqa: E402
from memory_helpers import HashEmbedder  # noqa: E402


@pytest.fixture
def hash_embedder():
    return HashEmbedder()


@pytest.fixture(scope="module")
def built_store(tmp_path_factory):
    """A store folder with N_RECORDS records, one utility update, then closed."""
    from miaflow.memory import Trajectory, TrajectoryStore

    path = tmp_path_factory.mktemp("built") / "store"
    store = TrajectoryStore(path, embedder=HashEmbedder())
    ids = store.add_many([Trajectory(task_id=f"t{i}", question=question(i), answer=f"answer {i}",
                                     judgement="correct") for i in range(N_RECORDS)])
    store.update_utilities("task-u", ids[:3], 1.0)
    q = {i: store.get(ids[i])[0].q_value for i in range(3)}
    store.close()
    return path, ids, q


@pytest.fixture
def store_copy(built_store, tmp_path):
    path, ids, q = built_store
    dst = tmp_path / "store"
    shutil.copytree(path, dst)
    (dst / "miaflow.lock").unlink(missing_ok=True)
    return dst, ids, q


@pytest.fixture
def tiny_index():
    from _tiny import TinyIndex

    return TinyIndex()


@pytest.fixture
def script():
    from _tiny import scripted

    return scripted
