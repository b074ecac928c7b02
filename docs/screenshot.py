"""Refresh the README's picture: the first screen of a report, taken with headless chromium.

    bench run suites/controlled.toml                  # writes report/controlled/index.html
    python docs/screenshot.py report/controlled/index.html   # -> docs/report-first-screen.png

The picture is the page at 1400 CSS px wide, cut after its answer section (the first screen a reader sees), reduced
to a 64-colour palette so it stays small in the repository. Needs Debian's `chromium` and Pillow.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "report-first-screen.png"
WIDTH, HEIGHT = 1400, 760


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("usage: python docs/screenshot.py report/<suite>/index.html", file=sys.stderr)
        return 2
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        shot = Path(tmp) / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--force-device-scale-factor=1", f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}",
                        Path(argv[0]).resolve().as_uri()], check=True, capture_output=True, timeout=120)
        with Image.open(shot) as image:
            image.convert("RGB").quantize(colors=64).save(OUT, optimize=True)
    print(f"{OUT.relative_to(ROOT)}: {OUT.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
