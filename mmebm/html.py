"""The executed notebooks as HTML pages with an index, for reading without Jupyter:

    python -m mmebm.html build/*.ipynb --out build/html

`make reproduce` runs it on what papermill executed. Each page is nbconvert's HTML export (figures
embedded); index.html lists the pages with each notebook's title and how many figures and
tables it shows.
"""

import argparse
import html
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter


def outputs(nb):
    """(figures, tables) a notebook shows: image outputs, and Markdown or HTML outputs holding a table."""
    figures = tables = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            figures += "image/png" in data
            tables += "<table" in data.get("text/html", "") or "\n|---" in data.get("text/markdown", "")
    return figures, tables


def title(nb, default):
    """The notebook's first Markdown heading."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


def export(notebooks, out_dir):
    """Write out_dir/<name>.html for each executed notebook and out_dir/index.html; returns the index."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    items = []
    for path in sorted(Path(p) for p in notebooks):
        nb = nbformat.read(path, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        (out_dir / f"{path.stem}.html").write_text(body, encoding="utf-8")
        figures, tables = outputs(nb)
        items.append(f'<li><a href="{html.escape(path.stem)}.html">{html.escape(title(nb, path.stem))}</a>'
                     f" ({figures} figures, {tables} tables)</li>")
    index = out_dir / "index.html"
    index.write_text("<!doctype html>\n<meta charset='utf-8'><title>mmebm: the executed notebooks</title>\n"
                     "<h1>mmebm: the executed notebooks</h1>\n<ul>\n" + "\n".join(items) + "\n</ul>\n", encoding="utf-8")
    return index


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m mmebm.html", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("notebooks", nargs="+", help="executed .ipynb files")
    p.add_argument("--out", default="build/html")
    args = p.parse_args(argv)
    print(f"HTML of {len(args.notebooks)} notebooks: {export(args.notebooks, args.out)}")


if __name__ == "__main__":
    main()
