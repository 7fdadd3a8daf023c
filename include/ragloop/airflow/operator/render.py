"""The operator's page and `ragloop report` as HTML: one Jinja template (`templates/page.html.j2`),
server-side, the plots inlined as SVG. `standalone=True` is the report file: no revoke buttons,
the docs-gaps CSV inside the file, nothing it links to needed to read it."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ragloop.links import safe_link
from ragloop.airflow.operator.charts import all_charts
from ragloop.airflow.operator.data import GAPS_SHOWN


@lru_cache(maxsize=1)
def _template():
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(
        loader=PackageLoader("ragloop.airflow.operator", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=_lenient(),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # The one way the template turns a recorded URL into a link target (see ragloop.links).
    environment.filters["safe_link"] = safe_link
    return environment.get_template("page.html.j2")


def _lenient():
    from jinja2 import ChainableUndefined

    return ChainableUndefined  # a section that failed to load has only `error`: its other fields render empty


def render_html(data: dict[str, Any], *, standalone: bool, base: str = "", can_revoke: bool = False) -> str:
    return _template().render(
        data=data,
        charts=all_charts(data),
        standalone=standalone,
        base=base,
        can_revoke=can_revoke,
        shown_topics=GAPS_SHOWN if not standalone else 10_000,
    )


def render_json(data: dict[str, Any]) -> str:
    """The report as one JSON document (the docs-gaps CSV is left out: the topics are there)."""
    gaps = {k: v for k, v in (data.get("gaps") or {}).items() if k != "csv"}
    return json.dumps({**data, "gaps": gaps}, default=str, ensure_ascii=False)
