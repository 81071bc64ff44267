"""miaflow: self-evolving deep-research agents.

LangGraph workflows with a Manager / Planner / Executor trio over search tools, a trajectory memory with learned
utilities, Bi-Mem conversation memory, and online GRPO on LoRA adapters. ``import miaflow`` is light: torch,
transformers, trl and chromadb load only when the names that need them are used.
"""

from __future__ import annotations

from ._lazy import lazy_exports
from .errors import (
    CorpusError,
    InvalidInputError,
    MemoryStoreError,
    MiaflowError,
    MissingDependencyError,
    ModelError,
    ModelUnavailableError,
    PlanError,
    ToolError,
)

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    # model layer
    "ChatModel": "miaflow.llm.base",
    "ChatResult": "miaflow.llm.base",
    "GenerationConfig": "miaflow.llm.base",
    "LocalChatModel": "miaflow.llm.local",
    "OpenAIChatModel": "miaflow.llm.openai_backend",
    "RetryConfig": "miaflow.llm.openai_backend",
    "load_chat_model": "miaflow.llm._factory",
    "prepare_bundled_model": "miaflow.llm.bundled",
    # memories
    "Embedder": "miaflow.memory",
    "default_embedder": "miaflow.memory",
    "Trajectory": "miaflow.memory",
    "MemoryRecord": "miaflow.memory",
    "Recall": "miaflow.memory",
    "ScoredMemory": "miaflow.memory",
    "TrajectoryStore": "miaflow.memory",
    "TrajectoryStoreConfig": "miaflow.memory",
    "CompressionConfig": "miaflow.memory",
    "compress": "miaflow.memory",
    "LangGraphStore": "miaflow.memory",
    "BiMemory": "miaflow.memory.bimem",
    "BiMemConfig": "miaflow.memory.bimem",
    "Turn": "miaflow.memory.bimem",
    "MemoryItem": "miaflow.memory.bimem",
    "load_locomo": "miaflow.memory.bimem",
    # tools
    "Document": "miaflow.tools",
    "SearchHit": "miaflow.tools",
    "QAExample": "miaflow.tools",
    "CorpusIndex": "miaflow.tools",
    "IndexConfig": "miaflow.tools",
    "load_corpus": "miaflow.tools",
    "load_questions": "miaflow.tools",
    "SearchTool": "miaflow.tools",
    "OpenDocumentTool": "miaflow.tools",
    # agents
    "Planner": "miaflow.agents",
    "Executor": "miaflow.agents",
    "Manager": "miaflow.agents",
    "Judge": "miaflow.agents",
    # workflows
    "ResearchWorkflow": "miaflow.workflows",
    "ResearchConfig": "miaflow.workflows",
    "ResearchResult": "miaflow.workflows",
    "ResearchBuilder": "miaflow.workflows",
    "build_research_graph": "miaflow.workflows",
    "Session": "miaflow.workflows",
    "SessionConfig": "miaflow.workflows",
    "build_session": "miaflow.workflows",
    # online RL
    "planner_reward": "miaflow.rl",
    "executor_reward": "miaflow.rl",
    "ExperienceBuffer": "miaflow.rl",
    "GRPOSettings": "miaflow.rl",
    "GRPOLearner": "miaflow.rl",
    "AdapterRegistry": "miaflow.rl",
    "TrainingWorker": "miaflow.rl",
    "attach_learning": "miaflow.rl",
    # testing
    "FakeChatModel": "miaflow.testing",
}

__all__ = [
    "__version__",
    "MiaflowError",
    "InvalidInputError",
    "ModelError",
    "ModelUnavailableError",
    "ToolError",
    "CorpusError",
    "PlanError",
    "MemoryStoreError",
    "MissingDependencyError",
    *_LAZY,
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
