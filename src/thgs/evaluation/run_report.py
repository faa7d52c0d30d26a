"""A run's report: the evaluation's tables and pictures as ``report.md`` and a self-contained
``report.html`` (images referenced by relative paths, so the folder can be moved or served as is)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from thgs.utils.numbers import fmt_number

Table = tuple[str, list[str], list[list[str]]]  # (title, header, rows)


@dataclass
class Picture:
    """One image of the report: ``path`` relative to the report's folder, and its caption."""

    path: str
    caption: str


@dataclass
class RunReport:
    """What a report shows: a title, key facts (label -> text), tables, pictures, links and commands."""

    title: str
    facts: dict[str, str] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, relative path)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def quality_table(summary: dict[str, Any]) -> Table:
    """PSNR / SSIM / LPIPS (x100) of the test split per region (full frame, head, mouth) and of the
    extra views, from an evaluation summary (:func:`thgs.evaluation.evaluate.evaluate_avatar`)."""
    nets = list(summary.get("lpips_nets", []))
    header = ["region", "frames", "PSNR (dB)", "SSIM"] + [f"LPIPS-{n} x100" for n in nets]
    rows = []
    items = [(r, summary.get("test", {}).get(r)) for r in ("full", "head", "mouth")]
    items += [(f"novel view {n}", v) for n, v in (summary.get("novel_views") or {}).items()]
    for name, r in items:
        if not r:
            continue
        rows.append([name, str(int(r.get("frames", 0))), fmt_number(r.get("psnr"), 2), fmt_number(r.get("ssim"), 4)]
                    + [fmt_number(r.get(f"lpips_{n}_x100"), 2) for n in nets])
    return "Image quality on the held-out test frames", header, rows


def lipsync_table(summary: dict[str, Any]) -> Table | None:
    """The lip-sync rows (ground truth's own row first, as Table 4 does): landmark-based mouth-opening
    correlation with the ground truth, lip LMD and AV offset, and the box-based opening correlation and
    envelope AV offset. None when the summary has no lip-sync scores."""
    lip = summary.get("lip_sync") or {}
    lm = lip.get("landmarks") or {}
    env = lip.get("av_sync") or {}
    wg = lip.get("with_ground_truth") or {}
    if not lm and "render" not in env:
        return None
    header = ["", "opening corr (landmarks)", "lip LMD (px)", "AV offset (landmarks)", "opening corr (box)",
              "AV offset (envelope)"]

    def av(block: dict[str, Any], who: str) -> str:
        r = block.get(who, {}) if block else {}
        r = r.get("av_sync", r) if isinstance(r, dict) else {}
        return str(r["offset"]) if isinstance(r, dict) and "offset" in r else "-"

    rows = [["ground truth", "1.000" if lm else "-", "0.00" if lm else "-", av(lm, "ground_truth"), "1.000",
             av(env, "ground_truth")],
            ["render", fmt_number(lm.get("opening_corr"), 3), fmt_number(lm.get("lip_lmd_px"), 2), av(lm, "render"),
             fmt_number(wg.get("opening_corr"), 3), av(env, "render")]]
    return "Lip sync (test frames, driven by their own audio)", header, rows


def to_markdown(report: RunReport) -> str:
    lines = [f"# {report.title}", ""]
    lines += [f"- **{k}:** {v}" for k, v in report.facts.items()]
    for title, header, rows in report.tables:
        lines += ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    for p in report.pictures:
        lines += ["", f"## {p.caption}", "", f"![{p.caption}]({p.path})"]
    if report.links:
        lines += ["", "## Files", ""] + [f"- [{label}]({path})" for label, path in report.links]
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report.notes]
    if report.commands:
        lines += ["", "## Commands", "", "```"] + report.commands + ["```"]
    return "\n".join(lines) + "\n"


def to_html(report: RunReport) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>", f"<title>{e(report.title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child{text-align:left}"
             "img{max-width:100%;border:1px solid #ddd}pre{background:#f4f4f4;padding:8px}</style>",
             "</head><body>", f"<h1>{e(report.title)}</h1><ul>"]
    parts += [f"<li><b>{e(k)}:</b> {e(v)}</li>" for k, v in report.facts.items()]
    parts.append("</ul>")
    for title, header, rows in report.tables:
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in rows]
        parts.append("</table>")
    for p in report.pictures:
        parts.append(f"<h2>{e(p.caption)}</h2><img src='{e(p.path)}' alt='{e(p.caption)}'>")
    if report.links:
        parts.append("<h2>Files</h2><ul>" + "".join(f"<li><a href='{e(path)}'>{e(label)}</a></li>"
                                                     for label, path in report.links) + "</ul>")
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in report.notes) + "</ul>")
    if report.commands:
        parts.append("<h2>Commands</h2><pre>" + e("\n".join(report.commands)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(folder: str | Path, report: RunReport, stem: str = "report") -> Sequence[Path]:
    """Write ``folder/<stem>.md`` and ``folder/<stem>.html`` atomically; returns both paths."""
    from thgs.utils.io import write_text

    folder = Path(folder)
    md, page = folder / f"{stem}.md", folder / f"{stem}.html"
    write_text(md, to_markdown(report))
    write_text(page, to_html(report))
    return md, page


__all__ = ["Picture", "RunReport", "Table", "lipsync_table", "quality_table", "to_html", "to_markdown",
           "write_report"]
