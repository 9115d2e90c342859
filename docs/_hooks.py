"""MkDocs hooks: the scenario gallery and the benchmark tables are the READMEs of
scenarios/ and benchmarks/, included into docs/gallery.md and docs/benchmarks.md with
pymdownx.snippets, so they are written once. This hook adds the pictures the scenarios
README shows (scenarios/images/*.png) to the site under images/, where its links point
once the README is included into docs/gallery.md."""

from pathlib import Path

from mkdocs.structure.files import File

_IMAGES = Path(__file__).resolve().parents[1] / "scenarios" / "images"


def on_files(files, config):
    for png in sorted(_IMAGES.glob("*.png")):
        files.append(
            File(
                f"images/{png.name}",
                src_dir=str(_IMAGES.parent),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files
