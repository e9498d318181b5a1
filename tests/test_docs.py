"""The README stays an entry page, and no relative link in it or in docs/ is broken."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README_LIMIT = 20 * 1024  # bytes

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)  # http:, https:, mailto:, ...


def relative_link_targets(markdown: str) -> list[str]:
    """Targets of the Markdown links in ``markdown`` that point into the repository: outside code,
    without a URL scheme, without their ``#anchor``; pure in-page anchors are skipped."""
    prose = _INLINE_CODE.sub("", _FENCE.sub("", markdown))
    targets = []
    for target in _LINK.findall(prose):
        if _EXTERNAL.match(target) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose target file does not exist."""
    return [t for t in relative_link_targets(page.read_text(encoding="utf-8"))
            if not (page.parent / t).is_file()]


def test_link_extraction_on_a_known_page(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("# there\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok with anchor](there.md#there) [gone](missing.md#x) [web](https://example.org)\n"
        "[in page](#top) ![image](img/missing.png)\n"
        "`[not a link](inline.md)`\n```\n[not a link](fenced.md)\n```\n"
    )
    assert relative_link_targets(page.read_text()) == ["there.md", "there.md", "missing.md", "img/missing.png"]
    assert broken_links(page) == ["missing.md", "img/missing.png"]


def test_readme_is_an_entry_page() -> None:
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT})"


def test_readme_and_docs_have_no_broken_relative_links() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    assert len(pages) > 30, "docs/ should hold the site's pages"
    broken = {str(p.relative_to(ROOT)): links for p in pages if (links := broken_links(p))}
    assert broken == {}


def test_readme_links_into_the_docs() -> None:
    targets = relative_link_targets((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "docs/index.md" in targets
    assert "docs/results/ant-leg-damage.md" in targets
