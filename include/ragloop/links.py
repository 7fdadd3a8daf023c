"""Which URLs may be rendered as links. A recorded source's URL comes from a source (a docs
front matter, a Slack message, a `url_template`, an app posting runs): whatever it holds, only
`http`, `https` and `ragloop` URLs become links; anything else (`javascript:`, `data:`, `file:`,
a URL with control characters or spaces a browser would strip before reading its scheme) is
shown as text."""

from __future__ import annotations

from urllib.parse import urlsplit

LINK_SCHEMES = ("http", "https", "ragloop")


def safe_link(url: object) -> str | None:
    """`url` itself when it may be a link's target, else None (show it as text)."""
    if not isinstance(url, str) or not url:
        return None
    # Browsers drop leading spaces and control characters, and tabs and newlines anywhere, before
    # they read the scheme ("java\tscript:"): a URL holding any of them is never a link.
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced [ in the host, for one
        return None
    if parts.scheme.lower() not in LINK_SCHEMES:
        return None
    if parts.scheme.lower() in ("http", "https") and not parts.netloc:
        return None
    return url
