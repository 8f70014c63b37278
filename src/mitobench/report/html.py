"""One self-contained HTML report: tables, plots, rater agreement and a gallery of errors."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}
.plots img{max-width:48%;margin:4px;border:1px solid #eee}
.gallery{display:flex;flex-wrap:wrap;gap:6px}
.tile{width:140px;font-size:11px;text-align:center}
.tile img{width:128px;height:128px;image-rendering:pixelated;border:2px solid #c33}
.note{color:#666;font-size:12px}
"""


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def array_data_uri(image: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def gallery_tiles(items: list[dict[str, Any]]) -> str:
    tiles = []
    for it in items:
        caption = f"{html.escape(it['id'])}<br>truth: {it['truth']}<br>p(atypical) = {it['prob']:.2f}" + (
            f"<br>votes: {it['votes']}" if it.get("votes") else ""
        )
        tiles.append(
            f'<div class="tile"><img src="{it["uri"]}" alt="{html.escape(it["id"])}">'
            f"<div>{caption}</div></div>"
        )
    return '<div class="gallery">' + "".join(tiles) + "</div>"


def noise_table(noise: dict[str, Any]) -> pd.DataFrame:
    """One row per model and agreement level (and all figures)."""

    def ci(v: list[float]) -> str:
        return "–" if v[0] is None or np.isnan(v[0]) else f"[{v[0]:.3f}, {v[1]:.3f}]"

    rows = []
    for model, m in noise["models"].items():
        for level, s in [("all", m["all"]), *m["by_level"].items()]:
            rows.append(
                {
                    "model": model,
                    "agreement": level,
                    "n (atypical)": f"{s['n']} ({s['n_atypical']})",
                    "bal. acc": f"{s['balanced_accuracy']:.3f}",
                    "bal. acc 95% CI": ci(s["balanced_accuracy_ci95"]),
                    "AUROC": f"{s['auroc']:.3f}",
                    "AUROC 95% CI": ci(s["auroc_ci95"]),
                    "Spearman ρ (vote share)": f"{m['spearman_vote_share']['rho']:.3f}"
                    if level == "all"
                    else "",
                }
            )
    return pd.DataFrame(rows)


def _leave_one_out(r: dict[str, Any]) -> pd.DataFrame:
    rows = [
        {
            "reference": ref,
            "scored": who,
            "n": s["n"],
            "bal. acc": f"{s['balanced_accuracy']:.3f}",
            "κ": f"{s['kappa']:.3f}",
        }
        for ref, scores in r["leave_one_out"].items()
        for who, s in scores.items()
    ]
    return pd.DataFrame(rows)


def _rater_section(r: dict[str, Any]) -> list[str]:
    """One voted dataset: pairwise κ, leave-one-out scores, accuracy by agreement, label noise,
    error by subtype."""
    parts = [
        f"<h3>{html.escape(r['dataset'])}: Fleiss' κ = {r['fleiss_kappa']:.3f} "
        f"({len(r['experts'])} experts, {r['n']} figures)</h3>",
        pd.DataFrame(
            [{"experts": k, "Cohen's κ": f"{v:.3f}"} for k, v in r["pairwise_kappa"].items()]
        ).to_html(index=False, border=0),
        "<p>Each expert against the majority of the others, and each model against the same "
        "reference (ties left out):</p>",
        _leave_one_out(r).to_html(index=False, border=0),
    ]
    if r.get("by_agreement"):
        agree = pd.DataFrame(
            [
                {"model": m, "accuracy, unanimous": v["unanimous"], "accuracy, split": v["split"]}
                for m, v in r["by_agreement"].items()
            ]
        )
        parts.append(f"<p>{r['unanimous_fraction']:.1%} of figures have unanimous votes.</p>")
        parts.append(agree.to_html(index=False, border=0, float_format=lambda x: f"{x:.3f}"))
    noise = r.get("label_noise", {})
    if noise.get("models"):
        parts.append(
            "<p>By expert agreement (figures where k of n experts sided with the majority): "
            "balanced accuracy and AUROC against the majority, bootstrap 95% CIs; and the "
            "rank correlation (Spearman) of P(atypical) with the share of experts voting "
            "atypical.</p>"
        )
        parts.append(noise_table(noise).to_html(index=False, border=0))
    if r.get("error_by_subtype"):
        sub = pd.DataFrame(r["error_by_subtype"]).T
        sub.columns = [f"{c} (n={r['subtype_counts'][c]})" for c in sub.columns]
        parts.append("<p>Error rate per subtype (expert 1's label):</p>")
        parts.append(sub.to_html(border=0, float_format=lambda x: f"{x:.3f}"))
    return parts


def _results_section(table: pd.DataFrame, extra: dict[str, pd.DataFrame]) -> list[str]:
    parts = ["<h2 id='results'>Results</h2>"]
    parts.append(
        table.to_html(index=False, classes="results", border=0) if not table.empty else "<p>No results.</p>"
    )
    for heading, frame in extra.items():
        if not frame.empty:
            parts.append(f"<h2>{html.escape(heading)}</h2>")
            parts.append(frame.to_html(index=False, border=0, float_format=lambda v: f"{v:.4f}"))
    return parts


def render(
    title: str,
    table: pd.DataFrame,
    plots: list[Path],
    galleries: dict[str, list[dict[str, Any]]],
    raters: list[dict[str, Any]],
    notes: list[str],
    extra: dict[str, pd.DataFrame] | None = None,
) -> str:
    """The whole page, self-contained (plots and patches inlined): notes, results, plots, expert
    agreement, misclassified patches."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>",
    ]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    parts += _results_section(table, extra or {})
    parts.append("<h2 id='plots'>Plots</h2><div class='plots'>")
    parts += [f"<img src='{png_data_uri(p)}' alt='{html.escape(p.stem)}'>" for p in plots]
    parts.append("</div>")
    if raters:
        parts.append("<h2 id='raters'>Expert agreement</h2>")
        for r in raters:
            parts += _rater_section(r)
    parts.append("<h2 id='gallery'>Misclassified patches</h2>")
    for name, items in galleries.items():
        parts.append(f"<h3 class='gallery-title'>{html.escape(name)} ({len(items)} shown)</h3>")
        parts.append(gallery_tiles(items))
    parts.append("</body></html>")
    return "\n".join(parts)
