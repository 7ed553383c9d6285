"""mkdocs hook: the README is the site's home page and CONTRIBUTING.md a page, with their links made relative.

Both live at the repository root, where GitHub shows them and where their links say `docs/x.md`; in the site
they sit beside the docs pages, so `docs/` is dropped from their links (and `CONTRIBUTING.md` becomes
`contributing.md`). Broken links still fail a strict build.
"""

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
ROOT_PAGES = {"README.md": "index.md", "CONTRIBUTING.md": "contributing.md"}


def site_links(text: str) -> str:
    """Rewrite a root page's Markdown link targets to the site's layout."""
    text = re.sub(r"\]\(docs/", "](", text)
    return re.sub(r"\]\(CONTRIBUTING\.md", "](contributing.md", text)


def on_files(files, config):
    for source, target in ROOT_PAGES.items():
        content = site_links((ROOT / source).read_text(encoding="utf-8"))
        files.append(File.generated(config, target, content=content))
    return files
