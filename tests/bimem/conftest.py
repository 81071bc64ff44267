"""Fixtures for the Bi-Mem tests: a small conversation written for the tests, and memories built from it with the
real bundled embedder and a real embedded Chroma folder."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

S1, S2, S3 = "10:00 am on 2 May, 2023", "6:30 pm on 20 May, 2023", "9:15 am on 14 June, 2023"

# Ann's sister Beth moves to Lisbon (session 1); weeks later Beth adopts a greyhound called Pixel (session 3).
# "Where does Pixel's owner live?" needs both turns; only the second shares words or meaning with the question.
CONVERSATION = [
    {"id": "D1:1", "speaker": "Ann", "text": "Hi Tom! How was your week?", "time": S1, "session": 1},
    {"id": "D1:2", "speaker": "Tom", "text": "Busy. I finally fixed the old bike and rode it to work twice.",
     "time": S1, "session": 1},
    {"id": "D1:3", "speaker": "Ann", "text": "My sister Beth moved to Lisbon last month for her new job.",
     "time": S1, "session": 1},
    {"id": "D1:4", "speaker": "Tom", "text": "That's a big step! The tiles and the trams there are lovely.",
     "time": S1, "session": 1},
    {"id": "D1:5", "speaker": "Ann", "text": "I also started a pottery class on Tuesdays, it is so relaxing.",
     "time": S1, "session": 1},
    {"id": "D1:6", "speaker": "Tom", "text": "Pottery sounds fun. I should try something creative too.",
     "time": S1, "session": 1},
    {"id": "D2:1", "speaker": "Tom", "text": "I'm thinking about where to live next year, maybe a bigger city.",
     "time": S2, "session": 2},
    {"id": "D2:2", "speaker": "Ann", "text": "A bigger city would suit you. Rent is the hard part though.",
     "time": S2, "session": 2},
    {"id": "D2:3", "speaker": "Tom", "text": "My landlord says the owner of our building wants to sell it.",
     "time": S2, "session": 2},
    {"id": "D2:4", "speaker": "Ann", "text": "Where would you live if you had to move out?", "time": S2, "session": 2},
    {"id": "D2:5", "speaker": "Tom", "text": "Probably near the river, the city park there is great for running.",
     "time": S2, "session": 2},
    {"id": "D2:6", "speaker": "Ann", "text": "I made a blue vase in pottery class this week!", "time": S2,
     "session": 2},
    {"id": "D3:1", "speaker": "Ann", "text": "Big news: Beth adopted a greyhound puppy called Pixel!", "time": S3,
     "session": 3},
    {"id": "D3:2", "speaker": "Tom", "text": "Aww, congratulations to her! Do you have a photo?", "time": S3,
     "session": 3},
    {"id": "D3:3", "speaker": "Tom", "text": "By the way, my cousin owns a bakery that I visit every weekend.",
     "time": S3, "session": 3},
    {"id": "D3:4", "speaker": "Ann", "text": "I love bread from small bakeries.", "time": S3, "session": 3},
]
SECRET = "zanzibarwhistle"  # appears only in Tom's turns, to check deletion leaves nothing
TOM_EXTRA = [{"id": "D4:1", "speaker": "Tom", "text": f"The password of my {SECRET} club is secret.",
              "time": S3, "session": 4},
             {"id": "D4:2", "speaker": "Ann", "text": "I won't tell anyone about the club.", "time": S3,
              "session": 4}]


@pytest.fixture(scope="session")
def embedder():
    from miaflow.memory.embeddings import default_embedder

    emb = default_embedder()
    emb.embed(["warm up"])
    return emb


@pytest.fixture(scope="module")
def fast_memory(tmp_path_factory, embedder):
    """A fast-mode memory with the test conversation, added one session at a time. Entity links pass more
    activation than temporal ones here (the defaults, tuned on LoCoMo, favour the neighbouring turns)."""
    from miaflow.memory.bimem import BiMemConfig, BiMemory

    cfg = BiMemConfig(entity_decay=0.9, temporal_decay=0.5)
    mem = BiMemory(tmp_path_factory.mktemp("bimem-fast"), embedder=embedder, config=cfg)
    for s in (1, 2, 3):
        mem.add_messages("talk", [m for m in CONVERSATION if m["session"] == s])
    return mem
