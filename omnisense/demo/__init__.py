"""`omnisense demo`: one example of each capability that exists, on built-in sample data, as one report.

Each part (see `omnisense._registry.DEMO_PARTS`) gets its own folder and returns a `DemoSection`; the report is
written as `report.md` and `report.html` in the output folder: the summary table first, then each part's text,
pictures, links to its interactive views and videos, and the command that reproduces it. The HTML is the same
Markdown rendered by markdown-it-py, with a stylesheet that reads on a laptop and on a phone. A part that fails is
reported as failed with its one-line reason, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import html
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from omnisense import _registry
from omnisense._progress import heartbeat
from omnisense._io import write_json_atomic, write_text_atomic


@dataclass
class DemoContext:
    """What a demo part gets: its own output folder, a seed and the device to run on."""

    out: Path
    seed: int = 0
    device: str = "cpu"

    def step(self, message: str) -> None:
        """One progress line (`[demo] registration: message`), so no part runs silent for long."""
        print(f"[demo] {self.out.name}: {message}", flush=True)


@dataclass
class DemoSection:
    """What a demo part returns.

    Args:
        title: the section heading.
        markdown: the section body (Markdown).
        images: pictures to show under the text (PNG files inside the part's folder).
        summary: one line for the closing summary.
        links: (label, file) pairs linked under the pictures: interactive views (HTML), videos, PLY files.
        command: the command line(s) that reproduce the part, run from the report's folder.
    """

    title: str
    markdown: str
    images: list[Path] = field(default_factory=list)
    summary: str = ""
    links: list[tuple[str, Path]] = field(default_factory=list)
    command: str = ""


def rule_answer(top_class: str, rejection: dict) -> str:
    """What the weights' rejection rule answers for a raw (`reject=False`) result: its top class, or "none of the
    known classes" when a score of the result's `rejection` record is below its threshold (no rule: the top class)."""
    from video.rejection import NONE_OF_THE_KNOWN

    rejected = bool(rejection["score"]) and any(v < t for v, t in zip(rejection["value"], rejection["threshold"]))
    return NONE_OF_THE_KNOWN if rejected else top_class


def run_demo(output: Path, *, only: list[str] | None = None, seed: int = 0) -> int:
    import torch

    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    parts = [(name, target) for name, target in _registry.DEMO_PARTS if not only or name in only]
    unknown = sorted(set(only or []) - {name for name, _ in _registry.DEMO_PARTS})
    if unknown:
        from omnisense._errors import OmnisenseError

        raise OmnisenseError(f"unknown demo part(s): {', '.join(unknown)}; parts: "
                             + ", ".join(n for n, _ in _registry.DEMO_PARTS))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = []
    for name, target in parts:
        ctx = DemoContext(out=output / name, seed=seed, device=device)
        ctx.out.mkdir(parents=True, exist_ok=True)
        print(f"[demo] {name} ...", flush=True)
        start = time.perf_counter()
        try:
            with heartbeat(f"demo {name}"):
                section = _registry.resolve(target)(ctx)
            status, error = "ok", ""
        except Exception as exc:  # one part failing must not hide the others
            (ctx.out / "error.txt").write_text(traceback.format_exc())
            section = DemoSection(title=name, markdown=f"**Failed**: {exc}", summary=f"FAILED: {exc}")
            status, error = "failed", str(exc)
        seconds = time.perf_counter() - start
        results.append({"part": name, "status": status, "seconds": round(seconds, 1), "summary": section.summary,
                        "error": error, "section": section})
        print(f"[demo] {name}: {status} in {seconds:.1f} s: {section.summary}", flush=True)
    _write_report(output, results)
    write_json_atomic(output / "summary.json", [{k: v for k, v in r.items() if k != "section"} for r in results])
    print(f"\nomnisense demo: {sum(r['status'] == 'ok' for r in results)}/{len(results)} parts ran")
    for r in results:
        print(f"  {r['part']:<16} {r['status']:<7} {r['seconds']:>6.1f} s  {r['summary']}")
    print(f"report: {output / 'report.md'} and {output / 'report.html'}")
    return 0 if all(r["status"] == "ok" for r in results) else 1


STYLE = """
:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#57606a;--line:#d0d7de;--code:#f3f4f6}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#9198a1;--line:#30363d;--code:#161b22}}
*{box-sizing:border-box}
body{font:16px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg);
 max-width:62em;margin:0 auto;padding:1em 1.2em 3em}
h1{font-size:1.7em;margin:.4em 0}h2{font-size:1.35em;border-bottom:1px solid var(--line);padding-bottom:.2em;
 margin-top:2em}
img,video{max-width:100%;height:auto;display:block;margin:.8em 0;border:1px solid var(--line);border-radius:4px}
table{border-collapse:collapse;display:block;overflow-x:auto;max-width:100%;margin:.8em 0;font-size:.92em}
th,td{border:1px solid var(--line);padding:.3em .6em;text-align:left;vertical-align:top}
th{white-space:nowrap}td:last-child{overflow-wrap:anywhere}
th{background:var(--code)}
code{background:var(--code);padding:.1em .3em;border-radius:3px;font-size:.9em}
pre{background:var(--code);padding:.8em;border-radius:6px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
pre code{padding:0;background:none}
a{color:#0969da}@media (prefers-color-scheme:dark){a{color:#4493f8}}
.meta{color:var(--muted);font-size:.9em}
@media (max-width:600px){body{font-size:15px;padding:.6em .7em 2em}h1{font-size:1.4em}h2{font-size:1.15em}
 th,td{padding:.25em .4em}}
"""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _rel(path: Path, output: Path) -> str:
    return Path(path).resolve().relative_to(output.resolve()).as_posix()


def report_markdown(output: Path, results: list[dict]) -> str:
    """The report as Markdown: the summary table, then one section per part (text, pictures, links, command)."""
    md = ["# omnisense demo report", "",
          f"{sum(r['status'] == 'ok' for r in results)} of {len(results)} parts ran. Commands below run from this "
          "report's folder; each part's files are in its own sub-folder.", "",
          "| part | status | seconds | result |", "|---|---|---|---|"]
    md += [f"| [{r['part']}](#{r['part']}) | {r['status']} | {r['seconds']} | {_cell(r['summary'])} |" for r in results]
    for r in results:
        section: DemoSection = r["section"]
        md += ["", f"## {section.title}", "", section.markdown.strip()]
        for image in section.images:
            rel = _rel(image, output)
            md += ["", f"[![{Path(rel).stem}]({rel})]({rel})"]
        if section.links:
            md += ["", "Open: " + " · ".join(f"[{label}]({_rel(p, output)})" for label, p in section.links)]
        if section.command:
            md += ["", "Reproduce:", "", "```bash", section.command.strip(), "```"]
    return "\n".join(md) + "\n"


def report_html(markdown: str, results: list[dict]) -> str:
    """The report's Markdown rendered by markdown-it-py (CommonMark with tables; raw HTML off), each part's section
    given its part name as id, so the summary links land on it."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    heads = [f"## {r['section'].title}" for r in results]
    # split at the section headings: the summary first, then one chunk per part, each wrapped in <section id=part>
    chunks, rest = [], markdown
    for head in heads:
        before, _, rest = rest.partition("\n" + head + "\n")
        chunks.append(before)
        rest = head + "\n" + rest
    chunks.append(rest)
    body = [parser.render(chunks[0])]
    for r, chunk in zip(results, chunks[1:]):
        body.append(f"<section id='{html.escape(r['part'])}'>\n{parser.render(chunk)}</section>")
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>\n"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
            f"<title>omnisense demo report</title>\n<style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _write_report(output: Path, results: list[dict]) -> None:
    md = report_markdown(output, results)
    write_text_atomic(output / "report.md", md)
    write_text_atomic(output / "report.html", report_html(md, results))
