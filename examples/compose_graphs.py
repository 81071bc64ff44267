"""Compose graphs: use a research workflow as one node of your own LangGraph graph, and stream its progress.

    python examples/compose_graphs.py --fake
"""

from __future__ import annotations

import sys
from typing import TypedDict

from langgraph.graph import END, START, StateGraph

from miaflow.tools import CorpusIndex
from miaflow.tools.sample import sample_corpus_path
from miaflow.workflows import ResearchWorkflow


class Report(TypedDict, total=False):
    topic: str
    questions: list[str]
    answers: list[str]
    report: str


def main(model=None) -> str:  # noqa: ANN001
    if model is None:
        from miaflow.llm import LocalChatModel

        model = LocalChatModel()
    research = ResearchWorkflow(planner=model, index=CorpusIndex.open(sample_corpus_path()))

    def ask(state: Report) -> Report:
        return {"questions": [f"Where did {state['topic']} first perform?", f"Who founded {state['topic']}?"]}

    def answer_all(state: Report) -> Report:
        answers = []
        for q in state["questions"]:
            for mode, chunk in research.stream(q):   # live progress from the inner graph
                if mode == "custom" and chunk.get("event") == "search":
                    print(f"  searching: {chunk['query']}")
                elif mode == "result":
                    answers.append(f"{chunk.answer} {chunk.citations}")
        return {"answers": answers}

    def write(state: Report) -> Report:
        return {"report": "\n".join(f"- {q}: {a}" for q, a in zip(state["questions"], state["answers"], strict=True))}

    g = StateGraph(Report)
    g.add_node("ask", ask)
    g.add_node("answer_all", answer_all)
    g.add_node("write", write)
    g.add_edge(START, "ask")
    g.add_edge("ask", "answer_all")
    g.add_edge("answer_all", "write")
    g.add_edge("write", END)
    out = g.compile().invoke({"topic": "Tinted Windows"})
    print(out["report"])
    return out["report"]


if __name__ == "__main__":
    if "--fake" in sys.argv:
        from miaflow.testing import FakeChatModel

        main(FakeChatModel(lambda messages, cfg: "Tulsa [Tinted Windows (band)]"))
    else:
        main()
