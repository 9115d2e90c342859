"""The documentation site's sources are complete: every public name has a section on an
API page, every page is in the navigation, and the navigation points at pages that
exist. (`make docs` builds the site with --strict, which CI runs; the browser test
loads it.)"""

import re
from pathlib import Path

import yaml

from .examples import ROOT, public_names

DOCS = ROOT / "docs"


def _nav_pages(nav) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for value in nav.values() for p in _nav_pages(value)]
    return [p for item in nav for p in _nav_pages(item)]


def _config() -> dict:
    # mkdocs.yml has no custom YAML tags, so the safe loader reads it.
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_every_public_name_is_on_an_api_page():
    documented = set()
    for page in (DOCS / "api").glob("*.md"):
        documented |= set(re.findall(r"^::: (\S+)", page.read_text(encoding="utf-8"), re.M))
    missing = sorted(set(public_names()) - documented)
    assert not missing, f"public names without a `::: name` section under docs/api/: {missing}"
    unknown = sorted(documented - set(public_names()))
    assert not unknown, f"API sections for names that are not public (or listed twice): {unknown}"


def test_navigation_and_pages_agree():
    nav = set(_nav_pages(_config()["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert not nav - pages, f"in the navigation but missing: {sorted(nav - pages)}"
    assert not pages - nav, f"pages left out of the navigation: {sorted(pages - nav)}"


def test_included_readmes_exist():
    for page in DOCS.rglob("*.md"):
        for included in re.findall(r'^--8<-- "([^"]+)"', page.read_text(encoding="utf-8"), re.M):
            assert (ROOT / included).is_file(), f"{page.name} includes a missing {included}"


def test_the_site_folder_is_ignored_by_git():
    assert "site/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert Path(ROOT / "mkdocs.yml").is_file()


def test_install_extras_the_docs_name_exist():
    """`pip install "diffsim-jax[cuda12]"` in the docs is an extra pyproject.toml declares."""
    from importlib.metadata import metadata

    extras = set(metadata("diffsim-jax").get_all("Provides-Extra"))
    pages = [*DOCS.rglob("*.md"), ROOT / "README.md"]
    named = {m for p in pages for m in re.findall(r"diffsim-jax\[(\w+)\]", p.read_text("utf-8"))}
    assert named, "the docs show no install with an extra"
    assert named <= extras, f"extras in the docs that pyproject.toml lacks: {named - extras}"
