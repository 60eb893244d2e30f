"""The project's set-up files agree with each other."""

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _name(req):
    return req.split(";")[0].split("[")[0].replace(" ", "")


def test_environment_yml_declares_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = set(project["dependencies"]) | {r for extra in project["optional-dependencies"].values() for r in extra}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda_pip = {r for r in pip_section if not r.startswith("-e")}
    assert {_name(r) for r in conda_pip} == {_name(r) for r in declared}
    assert conda_pip == {r.replace(" ", "") for r in declared}, "same packages, same version bounds"
    assert "-e ." in pip_section, "environment.yml installs the package itself"


def test_every_notebook_is_a_paired_percent_script_with_a_kernel():
    notebooks = sorted((REPO / "notebooks").glob("*.py"))
    assert notebooks
    for nb in notebooks:
        head = nb.read_text()[:600]
        assert "format_name: percent" in head and "formats: ipynb,py:percent" in head, nb.name
        assert "kernelspec" in head, f"{nb.name}: papermill needs a kernelspec"
        assert 'tags=["parameters"]' in nb.read_text(), f"{nb.name}: no parameters cell"
