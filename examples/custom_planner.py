"""Swap the planner for your own function, keep the stock executor, and add a node of your own.

    python examples/custom_planner.py                 # the bundled local model answers
    python examples/custom_planner.py --fake          # a scripted fake model (instant; what the tests run)
"""

from __future__ import annotations

import sys

from miaflow.tools import CorpusIndex
from miaflow.tools.sample import sample_corpus_path, sample_questions
from miaflow.workflows import ResearchBuilder


def two_hop_planner(question: str, memories: dict) -> list[str]:
    """A hand-written planner: search the question, then each quoted name in it."""
    steps = [f"Search for {question}"]
    parts = question.split('"')
    steps += [f"Search for {name}" for name in parts[1::2]]
    return steps + ["Answer the question from the documents"]


def log_answer(state: dict) -> dict:
    """A node of your own, run after the judge: it sees the whole state and may add to ``extra``."""
    return {"extra": {"answer_words": len(state["final"]["answer"].split())}}


def main(model=None) -> str:  # noqa: ANN001
    if model is None:
        from miaflow.llm import LocalChatModel

        model = LocalChatModel()
    index = CorpusIndex.open(sample_corpus_path())
    q = sample_questions(1)[0]
    wf = (ResearchBuilder()
          .planner(two_hop_planner)        # your function plans
          .executor(model)                 # a chat model executes (search, read, answer with citations)
          .corpus(index)
          .add_node("log_answer", log_answer, after="judge")
          .config(reflect=False)
          .build())
    res = wf.run(q.question, gold=q.answer)
    print(f"Q: {q.question}\nplan:\n{res.plan}\nanswer: {res.answer} {res.citations} (gold {q.answer}, F1 {res.f1:.2f})")
    return res.answer


if __name__ == "__main__":
    if "--fake" in sys.argv:
        from miaflow.testing import FakeChatModel

        main(FakeChatModel(["Tulsa [Tinted Windows (band)]"]))
    else:
        main()
