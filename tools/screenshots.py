"""Headless-browser checks and screenshots of the demo report and the interactive views (Debian's chromium).

    python tools/screenshots.py outputs/demo --out docs/images     # after `omnisense demo --output outputs/demo`

`probe(html)` loads a page in headless chromium and returns what rendered: the script errors the page raised
(window errors, rejected promises, console.error) and, per plotly graph, its trace count and types. It injects a
small script into a copy of the page beside the original (so relative links still resolve) and reads the result
back with `--dump-dom`. `screenshot(html, png)` takes a viewport screenshot. WebGL (plotly's 3D scenes) runs on
SwiftShader, chromium's CPU renderer, so no GPU is needed. tests/omnisense/test_views_browser.py uses both.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
         "--hide-scrollbars", "--mute-audio", "--no-first-run", "--disable-extensions",
         "--allow-file-access-from-files"]
MARK = "omnisense-probe"

# first in <head>: record every error the page raises from then on
CATCH = """<script>window.__errors=[];
window.addEventListener('error',function(e){window.__errors.push(String(e.message||e))});
window.addEventListener('unhandledrejection',function(e){window.__errors.push('rejected: '+String(e.reason))});
(function(){var f=console.error;console.error=function(){window.__errors.push(Array.from(arguments).join(' '));
return f.apply(console,arguments)}})();</script>"""
# last in <body>: after the plots rendered, write what is there into the DOM for --dump-dom
REPORT = """<script>setTimeout(function(){var plots=Array.from(document.querySelectorAll('.js-plotly-plot'));
var out={errors:window.__errors,title:document.title,
plots:plots.map(function(p){return {traces:(p.data||[]).length,types:(p.data||[]).map(function(t){return t.type}),
gl:p.querySelectorAll('canvas').length}}),
images:Array.from(document.images).map(function(i){return {src:i.getAttribute('src'),ok:i.complete&&i.naturalWidth>0}}),
tables:document.querySelectorAll('table').length};
var pre=document.createElement('pre');pre.id='%s';pre.textContent=JSON.stringify(out);
document.body.appendChild(pre)},%d);</script>"""


def find_browser() -> str | None:
    """The chromium executable, or None where none is installed."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    browser = find_browser()
    if browser is None:
        raise RuntimeError("no chromium installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="omnisense-chromium-") as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def probe(html: str | Path, *, wait_ms: int = 3000, timeout: float = 90.0) -> dict:
    """Load `html` in headless chromium and return `{"errors", "plots": [{"traces", "types", "gl"}], "images",
    "tables", "console"}` as the page had them `wait_ms` (virtual) milliseconds after loading."""
    html = Path(html).resolve()
    text = html.read_text(encoding="utf-8")
    head = re.search(r"<head[^>]*>", text, flags=re.I)
    text = (text[:head.end()] + CATCH + text[head.end():]) if head else CATCH + text
    tail = text.lower().rfind("</body>")
    script = REPORT % (MARK, wait_ms)
    text = text[:tail] + script + text[tail:] if tail >= 0 else text + script
    fd, name = tempfile.mkstemp(prefix=f".{html.stem}.probe-", suffix=".html", dir=html.parent)
    copy = Path(name)
    try:
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
        done = _run(["--enable-logging=stderr", "--v=0", f"--virtual-time-budget={wait_ms + 4000}", "--dump-dom",
                     copy.as_uri()], timeout)
    finally:
        copy.unlink(missing_ok=True)
    found = re.search(rf'<pre id="{MARK}">(.*?)</pre>', done.stdout, flags=re.S)
    if not found:
        raise RuntimeError(f"{html}: the page did not finish rendering (chromium exit {done.returncode}): "
                           f"{done.stderr[-500:]}")
    import html as html_module

    result = json.loads(html_module.unescape(found.group(1)))
    result["console"] = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    return result


_CHROME: list[int] = []  # pixels the headless window keeps for itself below the page


def _window_chrome(timeout: float = 60.0) -> int:
    """How much shorter than `--window-size` the page's viewport is (new headless chromium counts its window frame
    in the size: a full-height page would stop short of a screenshot's bottom)."""
    if not _CHROME:
        with tempfile.TemporaryDirectory() as tmp:
            page = Path(tmp) / "h.html"
            page.write_text("<html><body><script>document.write('H='+window.innerHeight)</script></body></html>")
            done = _run(["--window-size=800,800", "--dump-dom", page.as_uri()], timeout)
            found = re.search(r"H=(\d+)", done.stdout)
            _CHROME.append(800 - int(found.group(1)) if found else 0)
    return _CHROME[0]


def screenshot(html: str | Path, png: str | Path, *, size: tuple[int, int] = (1200, 800), wait_ms: int = 4000,
               colors: int = 256, timeout: float = 90.0) -> Path:
    """A screenshot of `html` with a `size` viewport, written as a palette PNG (small enough to commit)."""
    from PIL import Image

    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "shot.png"
        done = _run([f"--window-size={size[0]},{size[1] + _window_chrome()}", f"--virtual-time-budget={wait_ms}",
                     f"--screenshot={raw}", Path(html).resolve().as_uri()], timeout)
        if not raw.exists():
            raise RuntimeError(f"{html}: no screenshot (chromium exit {done.returncode}): {done.stderr[-500:]}")
        image = Image.open(raw).convert("RGB").crop((0, 0, size[0], size[1]))
        image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    return png


def video_still(video: str | Path, png: str | Path, *, fraction: float = 0.5, width: int = 900) -> Path:
    """One frame of a video (at `fraction` of its length), read with the project's own reader, as a PNG."""
    from PIL import Image

    from video.io import VideoReader

    reader = VideoReader(video)
    frame = reader[int((len(reader) - 1) * fraction)]
    image = Image.fromarray(frame)
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    elif image.width < width // 2:
        scale = (width // 2) // image.width
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(png, optimize=True)
    return Path(png)


# demo output -> docs/images: (file under the demo folder, picture name, viewport)
SHOTS = [
    ("report.html", "report.png", (1200, 800)),
    ("report.html", "report_phone.png", (500, 900)),  # chromium's narrowest window
    ("registration/view_roitr.html", "view_registration.png", (1200, 800)),
    ("detection/view_dsvt_pillar_small_simkitti.html", "view_detection.png", (1200, 800)),
    ("fusion/view.html", "view_fusion.png", (1200, 800)),
]
STILLS = [("video/bikes_overlay.mp4", "overlay_recognition.png", 0.05),  # inside the first clip
          ("fusion/overlay.mp4", "overlay_fusion.png", 0.6)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("demo", type=Path, help="the folder `omnisense demo --output` wrote")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args(argv)
    if find_browser() is None:
        print("no chromium installed: apt-get install chromium", file=sys.stderr)
        return 2
    for rel, name, size in SHOTS:
        page = args.demo / rel
        print(f"[screenshots] {rel} ...", flush=True)
        found = probe(page)
        if found["errors"]:
            print(f"  script errors: {found['errors']}", file=sys.stderr)
            return 1
        shot = screenshot(page, args.out / name, size=size)
        print(f"  {shot} ({shot.stat().st_size // 1024} KB); plots: {found['plots']}")
    for rel, name, fraction in STILLS:
        shot = video_still(args.demo / rel, args.out / name, fraction=fraction)
        print(f"[screenshots] {rel} -> {shot} ({shot.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
