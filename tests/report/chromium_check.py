"""Look at a report the way a person does: in a real browser (headless Chromium).

:func:`inspect_page` copies the page, injects a small script that measures it after load and
writes what it found into the DOM as JSON, and reads that back from Chromium's
``--dump-dom``: the window's width, the document's scroll width and height, every image with
its natural size (0 when it does not decode), and every element whose right edge lies beyond
the window. No Python package is needed, only the Chromium binary (Debian: ``apt-get install
chromium``). :func:`screenshots` writes full-page PNGs cut into screen-sized parts, to be
looked at.

Run as a script to inspect and screenshot a report::

    python tests/report/chromium_check.py runs/demo/report.html /tmp/shots
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
WIDTH = 1280

_PROBE = r"""
<script>
window.addEventListener("load", function () {
  var vw = window.innerWidth, out = {innerWidth: vw,
    scrollWidth: document.documentElement.scrollWidth,
    scrollHeight: document.documentElement.scrollHeight, images: [], overflow: []};
  document.querySelectorAll("img").forEach(function (im, i) {
    out.images.push({i: i, alt: im.alt, complete: im.complete, naturalWidth: im.naturalWidth,
                     naturalHeight: im.naturalHeight, width: im.getBoundingClientRect().width});
  });
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.id === "mtlkit-probe") return;
    var r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 0.5) {
      var text = (el.textContent || "").trim().slice(0, 60);
      out.overflow.push({tag: el.tagName.toLowerCase(), right: Math.round(r.right), text: text});
    }
  });
  var pre = document.createElement("pre");
  pre.id = "mtlkit-probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def find_chromium() -> str | None:
    """The Chromium binary, or ``None`` where it is not installed."""
    env = os.environ.get("MTLKIT_CHROMIUM")
    for path in ((env,) if env else ()) + CHROMIUM_CANDIDATES:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def _base_args(chromium: str, profile: str, width: int, height: int) -> list[str]:
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--no-first-run", "--disable-extensions", "--mute-audio", f"--user-data-dir={profile}",
            f"--window-size={width},{height}", "--virtual-time-budget=10000"]


def inspect_page(page: Path, *, width: int = WIDTH, height: int = 900, timeout: float = 120.0) -> dict[str, Any]:
    """Measure ``page`` (an HTML file) in headless Chromium at a ``width`` px window."""
    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium is not installed (apt-get install chromium).")
    text = Path(page).read_text(encoding="utf-8")
    probed = text.replace("</body>", _PROBE + "</body>", 1)
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "page.html"
        copy.write_text(probed, encoding="utf-8")
        args = _base_args(chromium, str(Path(tmp) / "profile"), width, height)
        done = subprocess.run([*args, "--dump-dom", copy.as_uri()], capture_output=True, text=True,
                              timeout=timeout, check=False)
    found = re.search(r'<pre id="mtlkit-probe">(.*?)</pre>', done.stdout, re.S)
    if found is None:
        raise RuntimeError(f"Chromium did not run the probe (exit {done.returncode}): {done.stderr[-2000:]}")
    return json.loads(html.unescape(found.group(1)))


def screenshots(page: Path, out_dir: Path, *, width: int = WIDTH, part: int = 1400,
                timeout: float = 180.0) -> list[Path]:
    """Full-page screenshots of ``page`` cut into parts of ``part`` px height."""
    from PIL import Image

    chromium = find_chromium()
    if chromium is None:
        raise FileNotFoundError("Chromium is not installed (apt-get install chromium).")
    height = int(inspect_page(page, width=width)["scrollHeight"]) + 20
    out_dir.mkdir(parents=True, exist_ok=True)
    full = out_dir / "full.png"
    with tempfile.TemporaryDirectory() as tmp:
        args = _base_args(chromium, str(Path(tmp) / "profile"), width, height)
        subprocess.run([*args, f"--screenshot={full}", Path(page).resolve().as_uri()], capture_output=True,
                       timeout=timeout, check=True)
    parts = []
    with Image.open(full) as im:
        for i, top in enumerate(range(0, im.size[1], part)):
            p = out_dir / f"part{i:02d}.png"
            im.crop((0, top, im.size[0], min(top + part, im.size[1]))).save(p)
            parts.append(p)
    return parts


if __name__ == "__main__":  # pragma: no cover - a tool for people
    target = Path(sys.argv[1])
    found = inspect_page(target)
    print(json.dumps({k: v for k, v in found.items() if k != "images"}, indent=1)[:4000])
    print(f"{len(found['images'])} images; undecoded: "
          f"{[i for i in found['images'] if not i['naturalWidth']]}")
    if len(sys.argv) > 2:
        for p in screenshots(target, Path(sys.argv[2])):
            print(p)
