"""The documentation holds together: the README is a front page, and every link in it and in docs/
reaches a file that exists and, for an anchor, a heading that exists there (GitHub's anchor rule)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")


def _outside_fences(text: str):
    fence = False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        elif not fence:
            yield line


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but '-' and '_' dropped, spaces to '-',
    a repeated anchor numbered -1, -2, ..."""
    seen: dict[str, int] = {}
    out = set()
    for line in _outside_fences(path.read_text(encoding="utf-8")):
        m = re.match(r"^#{1,6} (.*)", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def links(path: Path):
    for line in _outside_fences(path.read_text(encoding="utf-8")):
        for m in LINK.finditer(line):
            target = m.group(2)
            if not re.match(r"^[a-z]+:", target):
                yield target


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_reaches_a_file_and_heading(page):
    bad = []
    for target in links(page):
        file, _, anchor = target.partition("#")
        dest = page if not file else (page.parent / file).resolve()
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            bad.append(f"{target}: no heading '{anchor}' in {dest.name}")
    assert not bad, bad


def test_readme_is_a_front_page():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 250
    for part in ("## Set-up: two commands", "## The command line", "## Python API", "## What each report means",
                 "## Measured results at a glance", "## Read more", "## Known limits"):
        assert part in text, part
    linked = {t.partition("#")[0] for t in links(ROOT / "README.md")}
    orphans = [p.name for p in PAGES[1:] if f"docs/{p.name}" not in linked]
    assert not orphans, f"docs pages the README does not link: {orphans}"


def test_the_checker_catches_a_broken_link(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Title\n\n[ok](#title) [bad](#nothing) [gone](missing.md)\n```\n[code](#not-checked)\n```\n")
    targets = list(links(page))
    assert targets == ["#title", "#nothing", "missing.md"]
    assert anchors(page) == {"title"}
