"""The demo report (Markdown rendered by markdown-it-py) and the heartbeat that reports long work."""

from __future__ import annotations

import re
import time

from omnisense._progress import heartbeat
from omnisense.demo import DemoContext, DemoSection, report_html, report_markdown


def _results(out):
    (out / "reg").mkdir(parents=True)
    png = out / "reg" / "pic.png"
    png.write_bytes(b"\x89PNG")
    view = out / "reg" / "view.html"
    view.write_text("<html></html>")
    ok = DemoSection("3D registration", "The kitten.\n\n| method | RRE |\n|---|---|\n| roitr | 0.1 |", [png],
                     "kitten: roitr ok", links=[("3D view", view)], command="omnisense register a.xyz b.xyz")
    bad = DemoSection("audio", "**Failed**: <script>alert(1)</script> a|b", summary="FAILED: bad | file")
    return [{"part": "registration", "status": "ok", "seconds": 1.5, "summary": ok.summary, "section": ok},
            {"part": "audio", "status": "failed", "seconds": 0.1, "summary": bad.summary, "section": bad}]


def test_markdown_has_the_summary_first_then_sections(tmp_path):
    md = report_markdown(tmp_path, _results(tmp_path))
    assert md.index("| part | status |") < md.index("## 3D registration") < md.index("## audio")
    assert "[registration](#registration)" in md
    assert "FAILED: bad \\| file" in md  # a pipe in a summary does not break the table
    assert "[![pic](reg/pic.png)](reg/pic.png)" in md and "[3D view](reg/view.html)" in md
    assert "```bash\nomnisense register a.xyz b.xyz\n```" in md


def test_html_is_rendered_markdown(tmp_path):
    results = _results(tmp_path)
    page = report_html(report_markdown(tmp_path, results), results)
    assert "name='viewport'" in page and "max-width:100%" in page
    assert page.count("<table>") == 2 and "|---|" not in page and "**" not in page  # tables and bold, not raw
    assert "<section id='registration'>" in page and "<section id='audio'>" in page
    assert '<a href="#registration">registration</a>' in page
    assert '<img src="reg/pic.png" alt="pic"' in page and '<a href="reg/view.html">3D view</a>' in page
    assert '<code class="language-bash">omnisense register a.xyz b.xyz' in page
    assert "<script>" not in page  # raw HTML in a section is escaped, never run
    body = re.sub(r"<style>.*?</style>", "", page, flags=re.S)
    assert body.index("<table>") < body.index("<h2>3D registration</h2>")


def test_heartbeat_reports_long_work_only(capsys, tmp_path):
    with heartbeat("work", every=0.05, count=lambda: "3 files"):
        time.sleep(0.22)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("[work] ") and line.endswith("..., 3 files") for line in lines)
    with heartbeat("quick", every=5.0):
        pass
    assert capsys.readouterr().err == ""


def test_demo_steps_name_their_part(capsys, tmp_path):
    DemoContext(out=tmp_path / "detection").step("model 1 ...")
    assert capsys.readouterr().out == "[demo] detection: model 1 ...\n"
