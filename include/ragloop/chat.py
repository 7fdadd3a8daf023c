"""The chat model: a prompt template rendered and sent to any OpenAI-compatible chat completions
API through the `openai_default` connection (any base URL), with its token counts.

Token counts are the API's own usage figures when the reply carries them, else counted with
tiktoken (the offline cl100k_base encoding), and the reply says which.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from ragloop.errors import RagloopError
from ragloop.prompts import PromptTemplate

log = logging.getLogger(__name__)

# Per-message overhead of the chat format, as OpenAI documents it for its tokenizer.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


class ChatError(RagloopError):
    """The chat API refused or failed after the client's retries; the message says which model and why."""


class ChatTimeout(ChatError):
    """No reply within the timeout (`llm.timeout` in sources.yaml), after the client's retries."""


DEFAULT_TIMEOUT = 60.0  # seconds per request; a small local model on a busy CPU may need more (llm.timeout)


@dataclass
class ChatReply:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    token_source: str  # "api" or "tiktoken"
    latency_ms: float
    finish_reason: str = ""  # "stop"; "length" when the reply was cut at the token limit; "" if not said


def count_message_tokens(messages: list[dict[str, str]], model: str) -> int:
    from ragloop.tokens import count_tokens

    return (
        sum(TOKENS_PER_MESSAGE + count_tokens(m["content"], model) + count_tokens(m["role"], model) for m in messages)
        + TOKENS_PER_REPLY
    )


class ChatModel:
    """One configured chat model. `llm` is the config's `llm` mapping: {connection, model, timeout}.
    `timeout` (seconds per request) is the argument when given, else `llm.timeout`, else 60."""

    def __init__(self, llm: dict, *, max_retries: int = 2, timeout: float | None = None):
        self.connection = llm.get("connection") or "openai_default"
        self.model_override = llm.get("model")
        self._max_retries = max_retries
        self._timeout = float(timeout or llm.get("timeout") or DEFAULT_TIMEOUT)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            from ragloop.airflow.connections import openai_client

            self._client = openai_client(self.connection, max_retries=self._max_retries, timeout=self._timeout)
        return self._client

    def model_for(self, template: PromptTemplate) -> str:
        model = self.model_override or template.model
        if not model:
            raise ChatError(f"no model for prompt {template.label}: set llm.model in sources.yaml or model in {template.path}")
        return model

    def complete(
        self, template: PromptTemplate, extra_messages: list[dict[str, str]] | None = None, **variables: str
    ) -> ChatReply:
        """The template rendered with `variables`, then `extra_messages` (a follow-up turn, such as
        asking again after a reply that did not parse), sent as one chat completion."""
        messages = template.render(**variables) + list(extra_messages or [])
        model = self.model_for(template)
        kwargs = dict(template.invocation)
        if template.response_format == "json":
            kwargs["response_format"] = {"type": "json_object"}
        started = time.monotonic()
        try:
            response = self.client.chat.completions.create(model=model, messages=messages, **kwargs)
        except Exception as err:  # openai's errors carry status and message; keep them, drop the stack
            from openai import APITimeoutError

            if isinstance(err, APITimeoutError):
                raise ChatTimeout(
                    f"chat model {model} via connection {self.connection!r} gave no reply to prompt {template.label} "
                    f"within {self._timeout:g} s ({self._max_retries + 1} attempts)"
                ) from err
            raise ChatError(
                f"chat model {model} via connection {self.connection!r} failed for prompt {template.label}: {err}"
            ) from err
        latency_ms = (time.monotonic() - started) * 1000
        if not response.choices:
            raise ChatError(f"chat model {model} returned no choices for prompt {template.label}")
        text = response.choices[0].message.content or ""
        finish_reason = str(getattr(response.choices[0], "finish_reason", "") or "")
        usage = getattr(response, "usage", None)
        if usage is not None and usage.prompt_tokens is not None and usage.completion_tokens is not None:
            prompt_tokens, completion_tokens, source = usage.prompt_tokens, usage.completion_tokens, "api"
        else:
            from ragloop.tokens import count_tokens

            prompt_tokens = count_message_tokens(messages, model)
            completion_tokens = count_tokens(text, model)
            source = "tiktoken"
        return ChatReply(
            text=text,
            model=response.model or model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            token_source=source,
            latency_ms=latency_ms,
            finish_reason=finish_reason,
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
