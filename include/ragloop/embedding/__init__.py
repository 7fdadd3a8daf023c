"""Embedders: the Embedder protocol, the offline local model, and OpenAI through `openai_default`.

An embedder states its name and dimension (recorded with the collection it fills), the most
tokens one input may have, and counts tokens with the model's own tokenizer, so the chunker can
size chunks for the model that will embed them.

Modules: `base` (the protocol, usage, error), `local` (ONNX and torch), `hashed`, `openai_api`;
`make_embedder` here builds the one the configuration names.
"""

from __future__ import annotations

from ragloop.embedding.base import Embedder, EmbeddingError, EmbeddingUsage
from ragloop.embedding.hashed import HashEmbedder
from ragloop.embedding.local import LOCAL_MODEL_NAME, LocalEmbedder, TorchEmbedder, local_tokenizer
from ragloop.embedding.openai_api import OpenAIEmbedder

__all__ = [
    "EMBEDDER_TYPES",
    "LOCAL_MODEL_NAME",
    "Embedder",
    "EmbeddingError",
    "EmbeddingUsage",
    "HashEmbedder",
    "LocalEmbedder",
    "OpenAIEmbedder",
    "TorchEmbedder",
    "config_for_embedder",
    "local_tokenizer",
    "make_embedder",
]

EMBEDDER_TYPES = ("local", "local-torch", "openai", "hash")


def config_for_embedder(name: str) -> str:
    """The `embedder:` setting that builds the embedder recorded as `name`, for error messages."""
    local = f"local:{LOCAL_MODEL_NAME}"
    if name == local:
        return "`local-torch` (the torch model that filled it)"
    if name.startswith(local + "@onnx-"):
        quantization = name.split("@onnx-", 1)[1]
        return "`local`" if quantization == "int8" else f"`{{type: local, quantization: {quantization}}}`"
    if name.startswith("openai:"):
        model, _, dimensions = name[len("openai:") :].partition("@")
        return f"`{{type: openai, model: {model}" + (f", dimensions: {dimensions}" if dimensions else "") + "}`"
    if name.startswith("hash:"):
        return "`hash`"
    return repr(name)


def make_embedder(spec: str | dict | None) -> Embedder:
    """Build the embedder named by the config's `embedder:` (`local`: the ONNX model, `local-torch`,
    `openai`, `hash`, or a mapping with `type` and that embedder's options)."""
    if spec is None or spec == "local":
        return LocalEmbedder()
    if spec == "local-torch":
        return TorchEmbedder()
    if spec == "openai":
        return OpenAIEmbedder()
    if spec == "hash":
        return HashEmbedder()
    if isinstance(spec, dict):
        options = dict(spec)
        kind = options.pop("type", None)
        if kind == "local":
            return LocalEmbedder(**options)
        if kind == "local-torch":
            return TorchEmbedder(**options)
        if kind == "hash":
            return HashEmbedder(**options)
        if kind == "openai":
            if "connection" in options:
                options["conn_id"] = options.pop("connection")
            return OpenAIEmbedder(**options)
        raise ValueError(f"embedder.type must be one of {', '.join(EMBEDDER_TYPES)}, not {kind!r}")
    raise ValueError(f"embedder must be one of {', '.join(EMBEDDER_TYPES)} or a mapping with a type, not {spec!r}")
