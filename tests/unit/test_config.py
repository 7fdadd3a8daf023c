"""sources.yaml: the bundled file loads; mistakes name the file, the line and the key."""

from pathlib import Path

import pytest

from ragloop.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return path


def test_bundled_config_loads():
    config = load_config(REPO / "include" / "sources.yaml")
    assert config.collection == "RagloopChunks" and config.embedder == "local"
    assert config.chunking == {"max_tokens": 256, "overlap_tokens": 32}
    assert config.source_ids() == ["samples-docs"]


def test_unknown_top_level_key_names_line(tmp_path):
    path = write(tmp_path, "collection: Docs\nembeder: local\n")
    with pytest.raises(ConfigError, match=r"sources.yaml:2: unknown key 'embeder'"):
        load_config(path)


def test_duplicate_source_ids(tmp_path):
    path = write(tmp_path, "sources:\n  - {id: a, type: docs}\n  - id: a\n    type: slack\n")
    with pytest.raises(ConfigError, match=r":3: duplicate source id 'a' \(first at line 2\)"):
        load_config(path)


def test_unknown_source_type(tmp_path):
    path = write(tmp_path, "sources:\n  - {id: a, type: confluence}\n")
    with pytest.raises(ConfigError, match=r":2: source 'a' has unknown type 'confluence'"):
        load_config(path)


def test_bad_collection_and_embedder(tmp_path):
    with pytest.raises(ConfigError, match=r":1: collection 'my-docs'"):
        load_config(write(tmp_path, "collection: my-docs\n"))
    with pytest.raises(ConfigError, match=r":1: embedder must be"):
        load_config(write(tmp_path, "embedder: cohere\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
