"""The README stays a true front page.

Every table in the README's results sections is a verbatim subset of a table in figures/: the
line `<!-- from figures/NAME -->` right before it names the file, the source table is the first
one there whose header holds all of the README table's column names, and each README row is
matched to the source row with the same label (its first column, plus `profile`, `seed` and `judges`
where the README table has them). Columns are matched by name, not position, so figures/ may gain
columns. Also: the README is at most 15 KB, the two commands are on its first screen, and every
relative link in it points to a file that exists. Plain text only: no torch, no network.
"""

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_BYTES = 15 * 1024
KEY_COLUMNS = ("profile", "seed", "judges")  # besides the first column, when the README table has them
MARKER = re.compile(r"<!--\s*from\s+(\S+)\s*-->")


def _cells(line):
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _is_rule(line):
    return bool(re.fullmatch(r"\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?", line.strip()))


def markdown_tables(text):
    """Every pipe table in `text`: dicts with header, rows, the line it starts on and its marker."""
    lines = text.splitlines()
    tables, i = [], 0
    while i < len(lines) - 1:
        if lines[i].lstrip().startswith("|") and _is_rule(lines[i + 1]):
            start, header, rows = i, _cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            j = start - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            m = MARKER.search(lines[j]) if j >= 0 else None
            tables.append({"header": header, "rows": rows, "line": start + 1,
                           "source": m.group(1) if m else None})
        else:
            i += 1
    return tables


def results_text(text):
    """The README's sections whose heading starts with 'Results', with their line numbers kept."""
    out, keep = [], False
    for line in text.splitlines():
        if line.startswith("## "):
            keep = line[3:].strip().lower().startswith("results")
        out.append(line if keep else "")
    return "\n".join(out)


def source_tables(path):
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = [[c.strip() for c in r] for r in csv.reader(f)]
        return [{"header": rows[0], "rows": rows[1:]}]
    return markdown_tables(path.read_text(encoding="utf-8"))


def compare(table, root=ROOT):
    """The differences between one README table and its source in figures/, as messages."""
    where = f"README.md, table at line {table['line']}"
    src = table["source"]
    fix = f"copy the table's rows from {src} (or rerun make reproduce and copy them)"
    if src is None:
        return [f"{where}: a table in a results section without a `<!-- from figures/... -->` "
                "marker line right before it; every results table must come from figures/"]
    if not src.startswith("figures/") or not (root / src).is_file():
        return [f"{where}: the marker names {src!r}, which is not a file under figures/"]
    header = table["header"]
    if len(set(header)) != len(header):
        return [f"{where}: repeated column names {header}"]
    cands = [t for t in source_tables(root / src) if set(header) <= set(t["header"])]
    if not cands:
        return [f"{where}: no table in {src} has all the columns {header}; "
                f"use the column names of {src} exactly"]
    source = cands[0]
    keys = [header[0]] + [k for k in KEY_COLUMNS if k in header]
    kidx = [source["header"].index(k) for k in keys]
    by_key = {}
    for row in source["rows"]:
        by_key.setdefault(tuple(row[i] if i < len(row) else "" for i in kidx), []).append(row)
    errors = []
    for row in table["rows"]:
        if len(row) != len(header):
            errors.append(f"{where}: row {row[:1]} has {len(row)} cells for {len(header)} columns")
            continue
        readme = dict(zip(header, row))
        key = tuple(readme[k] for k in keys)
        label = ", ".join(f"{k} = {v!r}" if k else repr(v) for k, v in zip(keys, key))
        matches = by_key.get(key, [])
        if not matches:
            errors.append(f"{where}: no row with {label} in {src}; {fix}")
            continue
        if len(matches) > 1:
            errors.append(f"{where}: {len(matches)} rows with {label} in {src}; add a column "
                          f"that tells them apart ({', '.join(KEY_COLUMNS)})")
            continue
        srow = dict(zip(source["header"], matches[0]))
        for col in header:
            if readme[col] != srow.get(col, ""):
                errors.append(f"{where}: row {label}, column {col!r}: README has "
                              f"{readme[col]!r}, {src} has {srow.get(col, '')!r}; {fix}")
    return errors


def readme_results_tables():
    return markdown_tables(results_text(README.read_text(encoding="utf-8")))


def test_results_tables_equal_figures():
    tables = readme_results_tables()
    assert len(tables) >= 3, "the README's results sections should hold the PolyMNIST and CUB tables"
    errors = [e for t in tables for e in compare(t)]
    assert not errors, "README results tables differ from figures/:\n" + "\n".join(errors)


def test_checker_catches_a_changed_number():
    """The check above can fail: one hand-edited digit, label or marker is reported."""
    table = next(t for t in readme_results_tables() if t["source"] == "figures/table_polymnist.md")
    before = compare(table)
    col = table["header"].index("cross (ours)")
    changed = dict(table, rows=[list(r) for r in table["rows"]])
    changed["rows"][0][col] = changed["rows"][0][col].replace("0.", "0.9", 1)
    errors = [e for e in compare(changed) if e not in before]
    assert len(errors) == 1 and "cross (ours)" in errors[0] and "copy the table" in errors[0]
    relabelled = dict(changed, rows=[["No such model"] + table["rows"][0][1:]])
    assert any("no row with" in e for e in compare(relabelled))
    assert "marker" in compare(dict(table, source=None))[0]


def test_readme_size():
    size = README.stat().st_size
    assert size <= MAX_BYTES, (f"README.md is {size} bytes, over {MAX_BYTES}: move detail to "
                               "results/ (timings.md, history.md, reference.md) and link it")


def test_two_commands_on_first_screen():
    first = "\n".join(README.read_text(encoding="utf-8").splitlines()[:40])
    for command in ("make reproduce", "make test"):
        assert command in first, f"`{command}` should appear in the README's first 40 lines"


def test_relative_links_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    missing = [t for t in targets if not re.match(r"[a-z]+:|#", t)
               and not (ROOT / t.split("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    images = re.findall(r"!\[[^\]]*\]\((figures/[^)]+\.png)\)", text)
    assert images, "the README should show the key figures inline"


@pytest.mark.parametrize("name", ["timings.md", "history.md", "reference.md"])
def test_moved_history_is_linked(name):
    assert (ROOT / "results" / name).is_file()
    assert f"results/{name}" in README.read_text(encoding="utf-8")
