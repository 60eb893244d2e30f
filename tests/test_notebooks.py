"""Every notebook runs headless with a tiny parameter set (papermill), then nbval re-runs the
executed copy and compares its outputs cell by cell (tests/nbval_sanitize.cfg masks what is not
stable; cells tagged nbval-ignore-output are run but not compared)."""

import subprocess
import sys
from pathlib import Path

import jupytext
import papermill
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"


# Two optimizer steps of small conv models: the notebooks' code paths, not their results.
TINY_MODEL = ["model.net=conv", "model.z_dim=8", "model.w_dim=4", "model.langevin_steps=5", "data.limit=256",
              "data.test_limit=100", "train.batch_size=32", "train.max_steps=2", "train.eval_test=50",
              "train.eval_joint=50"]


TINY_CUB = ["model.z_dim=8", "model.w_dim=4", "model.langevin_steps=5", "data.limit=64", "train.batch_size=32",
            "train.max_steps=2"]


TINY_REFIT = dict(steps=2, n_train=64)  # the refitted EBM priors of 02_models

TINY_EXPERIMENTS = ["polymnist_mmvae", "polymnist_mmvae_ebm", "polymnist_mmvaeplus", "polymnist_mmvaeplus_ebm",
                    "polymnist_mvtcae"]


@pytest.fixture(scope="module")
def tiny_runs(polymnist_dir, tmp_path_factory):
    """The four PolyMNIST models and one of the other baselines (03_results marks the others not
    run), tiny, trained and evaluated: what 02_models loads and 03_results reads."""
    from mmebm.classifiers import Classifiers
    from mmebm.refit import RefitConfig
    from mmebm.runs import ensure_evaluated, ensure_refitted_runs, ensure_seeded_runs

    root = tmp_path_factory.mktemp("runs")
    # untrained judges: these tests run the notebooks' code paths; test_classifiers trains judges
    for name, n_classes in (("classifiers", 10), ("judges", 11), ("judges_check", 11), ("classifiers_protocol", 11)):
        judges = Classifiers(5, "convbn", n_classes)
        judges.test_accuracy = [0.1] * 5
        judges.save(root / name)
    runs = ensure_seeded_runs(TINY_EXPERIMENTS, "cpu", [0], root, None, [f"data.root={polymnist_dir}", "train.device=cpu",
                                                              f"train.eval_classifiers={root / 'classifiers'}",
                                                              *TINY_MODEL])
    runs |= ensure_refitted_runs(runs, root, RefitConfig(**TINY_REFIT), "cpu")
    for _, run, _ in runs.values():
        ensure_evaluated(run, root / "judges", n_joint=100, device="cpu",
                         judges=[root / "judges_check", root / "classifiers_protocol"])
    return root


def tiny_parameters(name, data_root, tmp, request):
    """Parameters that make each notebook run in seconds; every path is absolute. Only 02_models and
    03_results wait for the built PolyMNIST (another test worker may be building it)."""
    common = dict(data_root=str(data_root), figures_dir=str(tmp / "figures"))
    tiny_run = dict(common, runs_dir=str(tmp / "runs"), classifiers_dir=str(tmp / "classifiers"), n_joint=100,
                    classifier_epochs=1, classifier_limit=1000, device="cpu", overrides=TINY_MODEL)
    if name in ("02_models", "03_results"):  # the runs trained once per module (02 loads and evaluates them)
        runs, polymnist_dir = request.getfixturevalue("tiny_runs"), request.getfixturevalue("polymnist_dir")
        if name == "03_results":
            return dict(common, runs_dir=str(runs), polymnist_dir=str(polymnist_dir), n_show=4, chain_show=[0, 2, 5],
                        n_untrained=50, per_digit=2)
        return dict(tiny_run, runs_dir=str(runs), classifiers_dir=str(runs / "classifiers"), experiments=TINY_EXPERIMENTS,
                    protocol_judges_dir=str(runs / "classifiers_protocol"), judges_dir=str(runs / "judges"),
                    check_judges_dir=str(runs / "judges_check"), refit_steps=TINY_REFIT["steps"],
                    refit_n_train=TINY_REFIT["n_train"], polymnist_dir=str(polymnist_dir),
                    weights_dir=str(tmp / "no_weights"))
    return {
        "00_polymnist": dict(common, out_dir=str(tmp / "polymnist"), limit=1000, n_show=4),
        "01_objectives": dict(common, n_samples=2000, n_iters=60, n_iters_vae=60, batch_size=128),
        "04_cub": dict(common, runs_dir=str(tmp / "runs"), cache_dir=str(tmp / "cub_cache"), device="cpu",
                       weights_dir=str(tmp / "no_weights"), train_models=True,
                       overrides=TINY_CUB, n_chains=3, chain_show=[0, 2, 5], n_show=3, n_score=50, n_colour=100),
    }[name]


def notebooks_grouped():
    """Every notebook; 02_models and 03_results in one xdist group (make test: --dist loadgroup), so
    that one worker trains the tiny runs they share (a module-scoped fixture is per worker)."""
    return [pytest.param(name, marks=pytest.mark.xdist_group("tiny_runs")) if name in ("02_models", "03_results")
            else name for name in sorted(p.stem for p in NOTEBOOKS.glob("*.py"))]


@pytest.mark.parametrize("name", notebooks_grouped())
def test_notebook(name, data_root, tmp_path, request):
    source = tmp_path / f"{name}.src.ipynb"
    jupytext.write(jupytext.read(NOTEBOOKS / f"{name}.py"), source)
    executed = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(source, executed, parameters=tiny_parameters(name, data_root, tmp_path, request),
                               cwd=NOTEBOOKS, kernel_name="python3", progress_bar=False)
    if name != "02_models":  # it shows its figures; 03_results saves them
        assert list((tmp_path / "figures").glob("*.png")), "the notebook wrote no figure"
    # the HTML export of make reproduce: every figure and table of the executed notebook is on its page
    import nbformat

    from mmebm.html import export, outputs
    index = export([executed], tmp_path / "html")
    page = (tmp_path / "html" / f"{name}.html").read_text()
    figures, tables = outputs(nbformat.read(executed, as_version=4))
    assert figures > 0 and f"{name}.html" in index.read_text() and f"({figures} figures" in index.read_text()
    assert page.count("data:image/png;base64") >= figures
    assert page.count("<table") >= tables
    check = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
         "--nbval-sanitize-with", str(REPO / "tests" / "nbval_sanitize.cfg"), str(executed)],
        cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, f"nbval found differing outputs:\n{check.stdout[-4000:]}\n{check.stderr[-2000:]}"


@pytest.mark.parametrize("name", sorted(p.stem for p in NOTEBOOKS.glob("*.py")))
def test_cells_are_short_and_parameters_stay_put(name):
    """A reader follows each notebook a screen at a time: no code cell over 40 lines. And a
    parameter papermill sets is never assigned again after the parameters cell, so what the run
    was given is what it used."""
    import ast

    nb = jupytext.read(NOTEBOOKS / f"{name}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    long = [(i, len(c.source.splitlines())) for i, c in enumerate(code) if len(c.source.splitlines()) > 40]
    assert not long, f"{name}: code cells (index, lines) over 40 lines: {long}"
    params = next(c for c in code if "parameters" in c.metadata.get("tags", []))
    names = {t.id for node in ast.parse(params.source).body if isinstance(node, ast.Assign) for t in node.targets
             if isinstance(t, ast.Name)}
    after = code[code.index(params) + 1:]
    # every name bound at any depth: assignments, tuple targets, for and with targets, :=, augmented
    assigned = {node.id for c in after for node in ast.walk(ast.parse(jupytext_python(c.source)))
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)}
    assert not names & assigned, f"{name}: parameters assigned again after the parameters cell: {names & assigned}"


def jupytext_python(source):
    """A code cell's source without IPython magics (% and ! lines), which ast cannot parse."""
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
