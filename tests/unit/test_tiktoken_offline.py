"""tiktoken's cl100k_base works with no network, from the bundled registry package."""

from conftest import run_offline


def test_cl100k_base_without_network(tmp_path):
    result = run_offline(
        """
import tiktoken
from ragloop.tokens import encoding, count_tokens
enc = encoding("cl100k_base")
assert enc.encode("hello world") == [15339, 1917], enc.encode("hello world")
# Libraries that call tiktoken themselves find the same encoding in its cache.
assert tiktoken.get_encoding("cl100k_base").decode([15339, 1917]) == "hello world"
print(count_tokens("Fernwood keeps feature flags.", "text-embedding-3-small"))
""",
        env={"TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken-cache")},
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 3


def test_network_is_really_blocked_in_the_offline_runner():
    """Guards the guard: without the seeded cache, tiktoken's download must fail."""
    result = run_offline(
        """
import os, tempfile
os.environ["TIKTOKEN_CACHE_DIR"] = tempfile.mkdtemp()
import tiktoken
tiktoken.get_encoding("cl100k_base")
"""
    )
    assert result.returncode != 0
    assert "blocked by the test" in result.stderr
