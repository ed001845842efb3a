"""report.html: what drifted, shown as baseline-vs-current plots, then the violations, bad input and quality.

One self-contained HTML file (plots embedded as PNG, also written to plots/ for other tools), readable from
the S3 console or a laptop with no server.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

from model.common.data_contract import file_stem
from monitoring.violations import DriftResult, Violation

MAX_PLOTS = 12
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:70rem;color:#222}
h1{margin-bottom:.2rem} .ok{color:#1a7f37} .bad{color:#c62828} .muted{color:#666}
table{border-collapse:collapse;margin:.5rem 0 1.5rem} td,th{border-bottom:1px solid #ddd;padding:.3rem .7rem;
text-align:left} th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:1rem} .plots figure{margin:0;width:33rem}
.plots img{width:100%} figcaption{font-size:.9rem}
"""


def plot_drift(result: DriftResult) -> bytes:
    """Baseline vs current shares per bin or category, side by side, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    base = np.asarray(result.baseline_counts, dtype=float)
    cur = np.asarray(result.current_counts, dtype=float)
    base = base / base.sum() if base.sum() else base
    cur = cur / cur.sum() if cur.sum() else cur
    x = np.arange(len(base))
    figure, axis = plt.subplots(figsize=(6.4, 3.4), dpi=90)
    axis.bar(x - 0.2, base, width=0.4, label="baseline", color="#8da0cb")
    axis.bar(x + 0.2, cur, width=0.4, label="current", color="#fc8d62")
    axis.set_xticks(x, result.labels, rotation=35, ha="right", fontsize=7)
    axis.set_ylabel("share of values")
    distance = "n/a" if result.distance is None else f"{result.distance:.3f}"
    axis.set_title(f"{result.feature}: {result.method.replace('_', '-')} {distance}", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _fmt(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_report(
    output_dir: Path,
    *,
    summary: Mapping,
    violations: Sequence[Violation],
    drift: Sequence[DriftResult],
    bad_input: Mapping,
    quality: Mapping | None,
) -> Path:
    plots_dir = output_dir / "plots"
    to_plot = sorted((r for r in drift if r.drifted), key=lambda r: -(r.distance or 0))
    if not to_plot:  # nothing drifted: show the closest calls, so the page still says something
        to_plot = sorted((r for r in drift if r.distance is not None), key=lambda r: -(r.distance or 0))[:3]
    figures = []
    for result in to_plot[:MAX_PLOTS]:
        png = plot_drift(result)
        plots_dir.mkdir(parents=True, exist_ok=True)
        (plots_dir / f"{file_stem(result.feature)}.png").write_bytes(png)
        figures.append((result, base64.b64encode(png).decode()))

    e = html.escape
    status = "bad" if violations else "ok"
    verdict = f"{len(violations)} violation(s)" if violations else "no violation"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Drift report</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Drift report: <span class='{status}'>{e(verdict)}</span></h1>",
        f"<p class='muted'>{summary['records']} records from {summary['files']} file(s); baseline "
        f"{e(str(summary['baseline_dir']))}; {e(summary['finished_at'])}</p>",
    ]
    if figures:
        drifted = any(r.drifted for r, _ in figures)
        parts.append(f"<h2>{'Drifted features' if drifted else 'Closest to drifting'}</h2><div class='plots'>")
        for result, png in figures:
            caption = f"{result.feature}: {result.rows} values" + (f", PSI {result.psi:.3f}" if result.psi else "")
            parts.append(
                f"<figure><img alt='{e(result.feature)}' src='data:image/png;base64,{png}'>"
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
        parts.append("</div>")
    if violations:
        parts.append("<h2>Violations</h2><table><tr><th>feature</th><th>check</th><th>description</th></tr>")
        parts += [
            f"<tr><td>{e(v.feature_name)}</td><td>{e(v.constraint_check_type)}</td><td>{e(v.description)}</td></tr>"
            for v in violations
        ]
        parts.append("</table>")
    parts.append(
        "<h2>Distribution distances</h2><table><tr><th>feature</th><th>method</th><th>distance</th><th>PSI</th>"
        "<th>chi-square p</th><th>values</th><th>drift</th></tr>"
    )
    for r in drift:
        flag = "<span class='bad'>yes</span>" if r.drifted else (e(r.note) or "no")
        parts.append(
            f"<tr><td>{e(r.feature)}</td><td>{e(r.method)}</td><td class='num'>{_fmt(r.distance)}</td>"
            f"<td class='num'>{_fmt(r.psi)}</td><td class='num'>{_fmt(r.p_value, 3)}</td>"
            f"<td class='num'>{r.rows}</td><td>{flag}</td></tr>"
        )
    parts.append("</table>")
    parts.append(f"<h2>Unusable input: {bad_input['total']}</h2>")
    if bad_input["by_kind"]:
        parts.append("<table><tr><th>kind</th><th>count</th><th>examples</th></tr>")
        for kind, count in bad_input["by_kind"].items():
            examples = "<br>".join(e(x) for x in bad_input["examples"].get(kind, []))
            parts.append(f"<tr><td>{e(kind)}</td><td class='num'>{count}</td><td class='muted'>{examples}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p class='ok'>every record was readable</p>")
    if quality is not None:
        parts.append(
            f"<h2>Model quality</h2><p>{e(str(quality.get('status')))}: {quality.get('matched_events', 0)}"
            f" of {quality.get('labelled_events', 0)} labelled events matched a capture</p>"
        )
        if quality.get("gates"):
            parts.append("<table><tr><th>metric</th><th>value</th><th>gate</th><th>status</th></tr>")
            for gate in quality["gates"]:
                css = "bad" if gate["status"] == "failed" else "ok"
                parts.append(
                    f"<tr><td>{e(gate['metric'])}</td><td class='num'>{_fmt(gate['value'])}</td>"
                    f"<td>{e(gate['bound'])}</td><td class='{css}'>{e(gate['status'])}</td></tr>"
                )
            parts.append("</table>")
    parts.append("</body></html>")
    path = output_dir / "report.html"
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path
