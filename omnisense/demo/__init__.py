"""`omnisense demo`: one example of each capability that exists, on built-in sample data, as one report.

Each part (see `omnisense._registry.DEMO_PARTS`) gets its own folder and returns a `DemoSection`; the report is
written as `report.md` and `report.html` (pictures embedded by relative path) in the output folder. A part
that fails is reported as failed with its one-line reason, the others still run, and the exit status is 1.
"""

from __future__ import annotations

import html
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from omnisense import _registry
from omnisense._io import write_json_atomic, write_text_atomic


@dataclass
class DemoContext:
    """What a demo part gets: its own output folder, a seed and the device to run on."""

    out: Path
    seed: int = 0
    device: str = "cpu"


@dataclass
class DemoSection:
    """What a demo part returns.

    Args:
        title: the section heading.
        markdown: the section body (Markdown).
        images: pictures to show under the text (PNG files inside the part's folder).
        summary: one line for the closing summary.
    """

    title: str
    markdown: str
    images: list[Path] = field(default_factory=list)
    summary: str = ""


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


def _write_report(output: Path, results: list[dict]) -> None:
    md = ["# omnisense demo report", ""]
    body = ["<!doctype html><meta charset='utf-8'><title>omnisense demo</title>",
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}img{max-width:100%}</style>",
            "<h1>omnisense demo report</h1>"]
    md += ["| part | status | seconds | result |", "|---|---|---|---|"]
    md += [f"| {r['part']} | {r['status']} | {r['seconds']} | {r['summary']} |" for r in results]
    for r in results:
        section: DemoSection = r["section"]
        md += ["", f"## {section.title}", "", section.markdown]
        body += [f"<h2>{html.escape(section.title)}</h2>", f"<p>{html.escape(section.markdown)}</p>"]
        for image in section.images:
            rel = Path(image).resolve().relative_to(output.resolve())
            md += ["", f"![{rel.stem}]({rel.as_posix()})"]
            body.append(f"<img src='{html.escape(rel.as_posix())}' alt='{html.escape(rel.stem)}'>")
    write_text_atomic(output / "report.md", "\n".join(md) + "\n")
    write_text_atomic(output / "report.html", "\n".join(body) + "\n")
