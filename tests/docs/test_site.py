"""The documentation site (mkdocs.yml, docs/): the API reference names every public name, every page of the
nav exists, and (heavy) the site builds with ``mkdocs build --strict`` and renders in headless Chromium.

ADVGRAD_REQUIRE_PEERS=1 turns a missing tool (mkdocs, Chromium) from a skip into a failure, for CI, where
they are installed. ADVGRAD_ARTIFACTS=DIR keeps the home page's screenshot there.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import advgrad

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
API_LINE = re.compile(r"^::: advgrad\.(\S+)\s*$", re.MULTILINE)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(reason: str) -> None:
    """Skip, or fail where the tools are required (ADVGRAD_REQUIRE_PEERS=1)."""
    if os.environ.get("ADVGRAD_REQUIRE_PEERS") == "1":
        pytest.fail(f"{reason} (ADVGRAD_REQUIRE_PEERS=1)")
    pytest.skip(reason)


def _api_names() -> list[str]:
    """Every ``::: advgrad.NAME`` of the API pages, in page order."""
    return [name for page in sorted((DOCS / "api").glob("*.md")) for name in API_LINE.findall(page.read_text())]


def _nav_pages(node: object) -> list[str]:
    """The Markdown paths of mkdocs.yml's nav, however nested."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [page for item in node for page in _nav_pages(item)]
    if isinstance(node, dict):
        return [page for value in node.values() for page in _nav_pages(value)]
    return []


def test_api_reference_names_every_public_name_once() -> None:
    names = _api_names()
    assert names, "no '::: advgrad.NAME' line in docs/api/*.md"
    missing = sorted(set(advgrad.__all__) - set(names))
    assert not missing, f"advgrad.__all__ names missing from docs/api/*.md (add a '::: advgrad.NAME' block): {missing}"
    stale = sorted(set(names) - set(advgrad.__all__))
    assert not stale, f"docs/api/*.md documents names that advgrad.__all__ does not export: {stale}"
    twice = sorted({name for name in names if names.count(name) > 1})
    assert not twice, f"documented more than once: {twice}"


def test_every_nav_page_exists() -> None:
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert "index.md" in pages and "reference/cli.md" in pages
    # docs/hooks.py adds the committed records of results/ at results/...; everything else lives in docs/
    absent = [page for page in pages if not (DOCS / page).is_file()
              and not (page.startswith("results/") and (ROOT / page).is_file())]
    assert not absent, f"pages in mkdocs.yml's nav that do not exist: {absent}"


def _text(dom: str) -> str:
    """Visible text of an HTML document, whitespace collapsed."""
    dom = re.sub(r"<(script|style)\b.*?</\1>", " ", dom, flags=re.DOTALL)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def _chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run on a throwaway profile; nothing reaches the network (file:// pages only)."""
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.heavy
def test_site_builds_strict_and_renders_in_chromium(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_click"):
        try:
            __import__(module)
        except ImportError:
            _missing(f"{module} is not installed (pip install -e '.[docs]')")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _missing("Chromium is not installed (Debian: apt-get install chromium)")
    assert chromium is not None

    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                            str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr[-4000:]}"
    for page in site.rglob("*.html"):  # no web fonts, no CDN: the site works offline
        assert "fonts.googleapis" not in page.read_text(), page

    profile = tmp_path / "chromium-profile"
    pages = {"index.html": ["advgrad", "Quick start", "make demo", "make test"],
             "reference/cli/index.html": ["advgrad attack", "--eps", "advgrad eval", "--min-norm", "advgrad train"],
             "api/gradient-attacks/index.html": ["advgrad.fgsm(", "advgrad.pgd(", "steps", "AttackResult"]}
    for page, expected in pages.items():
        run = _chromium(chromium, profile, "--dump-dom", (site / page).as_uri())
        assert run.returncode == 0 and "</html>" in run.stdout, f"Chromium could not render {page}: {run.stderr[-2000:]}"
        text = _text(run.stdout)
        squeezed = text.replace(" ", "")
        for needle in expected:  # signatures are split into highlighted tokens: compare them without spaces
            assert needle in text or needle.replace(" ", "") in squeezed, f"{page} rendered without {needle!r}"
    dom = _chromium(chromium, profile, "--dump-dom", (site / "index.html").as_uri()).stdout
    for image in re.findall(r'<img[^>]+src="([^"]+\.png)"', dom):  # the demo's figures, copied by docs/hooks.py
        assert (site / image).is_file(), f"the home page shows {image}, which the build did not write"
    assert "accuracy_vs_eps.png" in dom

    shot = tmp_path / "home.png"
    run = _chromium(chromium, profile, f"--screenshot={shot}", "--window-size=1280,900", "--hide-scrollbars",
                    (site / "index.html").as_uri())
    assert shot.is_file() and shot.stat().st_size > 20_000, f"no screenshot of the home page: {run.stderr[-2000:]}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    artifacts = os.environ.get("ADVGRAD_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(artifacts) / "docs-home.png")
