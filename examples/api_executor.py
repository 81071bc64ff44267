"""An OpenAI-compatible API model as executor, the bundled local model as planner.

Any server that speaks the OpenAI chat API works: vLLM (``vllm serve MODEL``), ``transformers serve``, or a hosted
API. Start one, then:

    python examples/api_executor.py http://127.0.0.1:8000/v1/MODEL_NAME "your question"
"""

from __future__ import annotations

import sys

from miaflow.llm import LocalChatModel, load_chat_model
from miaflow.tools import CorpusIndex
from miaflow.tools.sample import sample_corpus_path
from miaflow.workflows import ResearchWorkflow


def main(url: str, question: str, planner=None) -> str:  # noqa: ANN001
    executor = load_chat_model(url)                  # OpenAIChatModel for http(s)://.../v1/NAME
    planner = planner or LocalChatModel()            # the planner stays local (and trainable with LoRA)
    wf = ResearchWorkflow(planner=planner, executor=executor, index=CorpusIndex.open(sample_corpus_path()))
    res = wf.run(question)
    print(f"plan:\n{res.plan}\nanswer: {res.answer} {res.citations} ({res.judgement})")
    return res.answer


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "Which city did Tinted Windows first perform in?")
