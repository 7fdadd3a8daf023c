"""Which judge the configuration selects (`llm:` set: the LLM judge; else the offline judge), its
name, and the version each criterion is graded at now."""

from __future__ import annotations

from ragloop.chat import ChatModel
from ragloop.config import Config
from ragloop.embedding import LOCAL_MODEL_NAME, LocalEmbedder, make_embedder
from ragloop.grading.judge import Judge
from ragloop.grading.llm_judge import LLMJudge
from ragloop.grading.offline_judge import OfflineJudge
from ragloop.grading.verdicts import JudgeKind, CHECKS, CHECKS_VERSION, CRITERIA
from ragloop.prompts import load_prompt


def make_judge(config: Config, chat: ChatModel | None = None) -> Judge:
    """The LLM judge when `llm:` is configured, else the offline judge (with the configured
    embedder when it is the local model, so one model is loaded)."""
    if config.llm is not None:
        return LLMJudge(chat or ChatModel(config.llm), config.product, owns_chat=chat is None)
    embedder = make_embedder(config.embedder)
    return OfflineJudge(embedder if isinstance(embedder, LocalEmbedder) else None)


def configured_judge_name(config: Config) -> str:
    """The judge's name as its verdicts give it, without loading a model or a client."""
    if config.llm is not None:
        return JudgeKind.LLM.named(ChatModel(config.llm).model_for(load_prompt(CRITERIA[0])))  # the client is made on first use
    return JudgeKind.OFFLINE.named(LOCAL_MODEL_NAME)


def criterion_versions(config: Config) -> dict[str, str]:
    """The version each criterion (and the checks) is graded at now, by the configured judge."""
    judge_version = LLMJudge.version if config.llm is not None else OfflineJudge.version
    return {CHECKS: CHECKS_VERSION, **{criterion: judge_version(criterion) for criterion in CRITERIA}}
