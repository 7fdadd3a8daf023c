"""The plots of the operator's page and `ragloop report`: SVG drawn in Python by pygal, inlined in
the HTML. Nothing is fetched when a chart is shown: pygal's tooltip script (which it would load from
the internet) is switched off, so the charts are plain SVG with hover titles."""

from __future__ import annotations

import re
from typing import Any

# The Airflow 3 UI's palette (Chakra): blue, green, amber, red, purple, cyan, gray.
COLORS = ("#0284c7", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#71717a")
FONT = "Inter, -apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, sans-serif"


def _style():
    from pygal.style import Style

    return Style(
        background="transparent",
        plot_background="transparent",
        foreground="#3f3f46",
        foreground_strong="#18181b",
        foreground_subtle="#d4d4d8",
        opacity=".85",
        opacity_hover="1",
        transition="0s",
        colors=COLORS,
        font_family=FONT,
        label_font_size=11,
        major_label_font_size=11,
        legend_font_size=12,
        title_font_size=14,
        value_font_size=10,
        tooltip_font_size=12,
        no_data_font_size=14,
    )


def _config(**options: Any) -> dict[str, Any]:
    return {
        "style": _style(),
        "js": [],  # no script from the internet
        "disable_xml_declaration": True,
        "width": 720,
        "height": 320,
        "explicit_size": False,
        "legend_at_bottom": True,
        "legend_at_bottom_columns": 4,
        "print_values": False,
        "show_minor_x_labels": True,
        "truncate_label": 18,
        "margin": 12,
        "margin_bottom": 20,
        "legend_box_size": 10,
        "dots_size": 3,
        "no_data_text": "no data yet",
        **options,
    }


def _render(chart) -> str:
    svg = chart.render(is_unicode=True)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)  # pygal's credits comment
    return re.sub(r"<script.*?</script>", "", svg, flags=re.S)  # its config for the tooltip script (switched off)


def _set_labels(chart, labels: list[str]) -> None:
    """The x labels; with many, a few of them written out (every bar still has its title on hover)."""
    chart.x_labels = labels
    if len(labels) > 10:
        chart.config.x_labels_major_count = 8
        chart.config.show_minor_x_labels = False


def _labels(rows: list[dict], key: str) -> list[str]:
    return [str(row[key]) for row in rows]


def run_label(row: dict) -> str:
    """A DAG run in a plot: its date and time, and the DAG's short name."""
    dag = row["dag_id"].removeprefix("ragloop_ingest_").replace("github_issues", "github")
    return f"{row['created_at'][5:16].replace('T', ' ')} {dag}"


def stacked_bars(title: str, labels: list[str], series: dict[str, list[float]], y_title: str = "", rotate: bool = True) -> str:
    import pygal

    chart = pygal.StackedBar(**_config(title=title, y_title=y_title, x_label_rotation=35 if rotate else 0))
    _set_labels(chart, labels)
    for name, values in series.items():
        chart.add(name, values)
    return _render(chart)


def grouped_bars(title: str, labels: list[str], series: dict[str, list[float]], y_title: str = "", rotate: bool = True) -> str:
    import pygal

    chart = pygal.Bar(**_config(title=title, y_title=y_title, x_label_rotation=35 if rotate else 0))
    _set_labels(chart, labels)
    for name, values in series.items():
        chart.add(name, values)
    return _render(chart)


def line(title: str, labels: list[str], series: dict[str, list[float | None]], y_title: str = "") -> str:
    import pygal

    chart = pygal.Line(**_config(title=title, y_title=y_title, x_label_rotation=35, fill=False))
    _set_labels(chart, labels)
    for name, values in series.items():
        chart.add(name, values)
    return _render(chart)


def horizontal_bars(title: str, values: dict[str, float], percent: bool = False) -> str:
    import pygal

    options: dict[str, Any] = {"title": title, "show_legend": False, "height": max(160, 60 + 28 * len(values))}
    if percent:
        options.update(range=(0, 100), value_formatter=lambda v: f"{v:.0f} %")
    chart = pygal.HorizontalBar(**_config(**options))
    chart.x_labels = list(values)
    chart.add("", list(values.values()))
    return _render(chart)


def all_charts(data: dict) -> dict[str, str]:
    """Every plot of the page, by name, from `data.gather()`'s result."""
    charts: dict[str, str] = {}
    runs = data.get("ingest_history", {}).get("runs", [])
    labels = [run_label(r) for r in runs]
    charts["ingest_documents"] = stacked_bars(
        "Documents per ingest run",
        labels,
        {k: [r["documents"][k] for r in runs] for k in ("new", "changed", "deleted", "failed")},
        "documents",
    )
    charts["ingest_chunks"] = stacked_bars(
        "Chunks embedded vs reused", labels, {k: [r["chunks"][k] for r in runs] for k in ("embedded", "reused")}, "chunks"
    )
    charts["ingest_tokens"] = grouped_bars(
        "Embedding tokens per run", labels, {"tokens": [r["embedding_tokens"] for r in runs]}, "tokens"
    )
    charts["ingest_seconds"] = stacked_bars(
        "Time per stage (seconds)",
        labels,
        {k: [r["seconds"][k] for r in runs] for k in ("extract", "plan", "index", "prune")},
        "s",
    )
    feedback = data.get("feedback", {})
    days = feedback.get("per_day", [])
    charts["feedback_runs"] = grouped_bars("Runs recorded per day", _labels(days, "day"), {"runs": [d["runs"] for d in days]})
    charts["feedback_votes"] = stacked_bars(
        "Votes per day", _labels(days, "day"), {"up": [d["up"] for d in days], "down": [d["down"] for d in days]}
    )
    rates = feedback.get("pass_rates", [])
    charts["feedback_pass_rates"] = horizontal_bars(
        "Pass rate per criterion and version",
        {f"{r['criterion']}@{r['version']}": round(100 * (r["pass_rate"] or 0), 1) for r in rates},
        percent=True,
    )
    charts["feedback_vetoes"] = horizontal_bars("Vetoes by reason", dict(feedback.get("vetoes", {})))
    written = feedback.get("writebacks_per_day", [])
    charts["feedback_writebacks"] = grouped_bars(
        "Answers written back and revoked per day",
        _labels(written, "day"),
        {"written back": [d["written"] for d in written], "revoked": [d["revoked"] for d in written]},
    )
    return charts
