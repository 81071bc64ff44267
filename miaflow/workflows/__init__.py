"""Workflows as LangGraph graphs: the deep-research graph, its group twin for GRPO, and the builder API for
users' own workflows. LangGraph itself is imported only when a graph is built.
"""

from __future__ import annotations

from .builder import ResearchBuilder
from .research import ResearchWorkflow, build_group_graph, build_research_graph
from .session import (
    QuestionOutcome,
    Session,
    SessionConfig,
    SessionQuestion,
    SessionSpec,
    SessionSummary,
    build_session,
    load_session_questions,
)
from .state import ResearchConfig, ResearchResult, ResearchState

__all__ = ["ResearchWorkflow", "ResearchResult", "ResearchConfig", "ResearchState", "ResearchBuilder",
           "build_research_graph", "build_group_graph", "Session", "SessionConfig", "SessionSpec", "SessionQuestion",
           "QuestionOutcome", "SessionSummary", "build_session", "load_session_questions"]
