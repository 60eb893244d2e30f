"""Coherence metrics (SPEC.md section 4), computed from generations and per-modality classifiers.

The core functions take tensors of generated images, so they can be tested on real data with
known answers and do not depend on any model class:

    cross_coherence(gen [M, M, N, 3, 28, 28], labels [N], classifiers) -> CrossCoherence
    joint_coherence(samples [N, M, 3, 28, 28], classifiers)            -> float

The model-level helpers (`model_cross_coherence(s)`, `model_joint_coherence`, `sample_predictions`)
are thin loops over batches that need only the two methods of `CoherenceModel`; the plural forms
score the same generations with several judge sets at once.

Images are classified exactly as given (float, expected in [0, 1]; uint8 is scaled by 1/255):
no clamping, so a model decides itself what its "decoded mean" is. Classification runs in
eval() mode under no_grad; the classifiers' previous train/eval mode is restored afterwards.
Model calls are *not* wrapped in no_grad: Langevin sampling of the EBM prior needs gradients.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch
from tqdm import tqdm


class CoherenceModel(Protocol):
    """What the model-level helpers need from a multimodal generative model."""

    def sample(self, n: int) -> torch.Tensor:
        """Joint generation: n draws from the prior (Langevin for the EBM prior), every modality
        decoded to its mean: [n, M, 3, 28, 28]."""
        ...

    def cross_generate(self, x: torch.Tensor, src: int) -> torch.Tensor:
        """From x [B, M, 3, 28, 28], one posterior sample of z given modality `src` only, w from the
        unit prior, every modality decoded to its mean: [B, M, 3, 28, 28] (slot `src` is the
        self-reconstruction)."""
        ...


@contextmanager
def evaluating(module):
    """Put `module` in eval() mode for the block, then restore its previous mode (per submodule)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def _as_float(x):
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


# tuples per judge call. On the CPU, 64 judge 1.2-2x faster than 2000 (the activations stay in
# cache) with the same answers (results/eval_speed/README.md); a GPU wants large batches.
JUDGE_BATCH = {"cpu": 64, "cuda": 2000}


@torch.no_grad()
def predict(classifiers, x, batch_size=None):
    """Predicted digits [N, M] for images x [N, M, 3, 28, 28], in eval mode, `batch_size` tuples
    at a time (default JUDGE_BATCH for the device) on the classifiers' device. Returns a CPU tensor."""
    device = next(classifiers.parameters()).device
    batch_size = batch_size or JUDGE_BATCH.get(device.type, 2000)
    if x.ndim != 5 or x.shape[1] != classifiers.n_modalities:
        raise ValueError(f"expected images [N, {classifiers.n_modalities}, 3, 28, 28], got {tuple(x.shape)}")
    with evaluating(classifiers):
        out = [classifiers(_as_float(x[s : s + batch_size].to(device))).argmax(-1).cpu()
               for s in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0, classifiers.n_modalities, dtype=torch.long)


@dataclass
class CrossCoherence:
    matrix: torch.Tensor  # [M, M] float64: matrix[src, tgt] = accuracy of target tgt generated from src
    per_target: torch.Tensor  # [M]: mean over the M - 1 sources of each target
    mean: float  # mean of per_target: the cross coherence the paper reports
    n: int  # test tuples evaluated

    @classmethod
    def from_counts(cls, correct, n):
        """From correct counts [M, M] over n tuples. The diagonal (self-reconstruction) is kept in
        `matrix` for inspection but left out of the averages."""
        matrix = correct.double() / n
        M = len(matrix)
        off = ~torch.eye(M, dtype=torch.bool)
        # per target (column) over its M - 1 sources, then over targets; with equal counts this is
        # also the plain mean of the M (M - 1) pairs
        per_target = (matrix * off).sum(0) / (M - 1)
        return cls(matrix, per_target, per_target.mean().item(), n)


def cross_correct(gen, labels, classifiers, batch_size=None):
    """Correct counts [M, M] for cross generations gen [M, M, N, 3, 28, 28] (gen[src, tgt] is
    target modality tgt generated from source src) against the true labels [N]."""
    M = classifiers.n_modalities
    if gen.ndim != 6 or gen.shape[:2] != (M, M):
        raise ValueError(f"expected gen [{M}, {M}, N, 3, 28, 28], got {tuple(gen.shape)}")
    labels = labels.cpu()
    # classify each source's M targets as one [N, M, ...] tuple: target tgt goes to classifier tgt
    return torch.stack([(predict(classifiers, gen[src].transpose(0, 1), batch_size) == labels[:, None]).sum(0)
                        for src in range(M)])


def cross_coherence(gen, labels, classifiers, batch_size=None):
    """Cross coherence of gen [M, M, N, 3, 28, 28] with true labels [N] -> CrossCoherence."""
    return CrossCoherence.from_counts(cross_correct(gen, labels, classifiers, batch_size), len(labels))


NO_DIGIT = 10  # the "no digit" answer of judges with an eleventh class (classifiers.NO_DIGIT)


def joint_agreement(pred):
    """Per sample, whether all M predicted digits are equal and are a digit: pred [N, M] -> bool [N].
    Five judges that agree on "no digit" (class 10, judges with an eleventh class) do not make a
    coherent sample."""
    return (pred == pred[:, :1]).all(1) & (pred[:, 0] != NO_DIGIT)


def joint_coherence(samples, classifiers, batch_size=None):
    """Fraction of joint samples [N, M, 3, 28, 28] whose M predicted digits all agree (no labels)."""
    return joint_agreement(predict(classifiers, samples, batch_size)).double().mean().item()


# --- model-level helpers: thin loops over CoherenceModel ---------------------------------------


def model_cross_coherences(model: CoherenceModel, data, judges, batch_size=250, progress=True):
    """Cross coherence of `model` on a PolyMNIST dataset (normally the test split, all of it),
    scored by every judge set of `judges` ({name: Classifiers}) on the same generations ->
    {name: CrossCoherence}. Calls model.cross_generate(x, src) for every batch and source, with
    x on the data's device (load the data on the model's device); put the model in eval() first."""
    M = data.n_modalities
    if any(c.n_modalities != M for c in judges.values()):
        raise ValueError(f"data has {M} modalities, classifiers {[c.n_modalities for c in judges.values()]}")
    correct = {name: torch.zeros(M, M, dtype=torch.long) for name in judges}
    for x, y in tqdm(data.batches(batch_size, shuffle=False), total=-(-len(data) // batch_size),
                     desc="cross coherence", disable=not progress):
        # all sources from one encoding where the model offers it (5x fewer encoder calls)
        gen_all = model.cross_generate_all(x) if hasattr(model, "cross_generate_all") else None
        for src in range(M):
            gen = (gen_all[src] if gen_all is not None else model.cross_generate(x, src)).detach()
            for name, classifiers in judges.items():
                correct[name][src] += (predict(classifiers, gen) == y.cpu()[:, None]).sum(0)  # [M targets]
    return {name: CrossCoherence.from_counts(c, len(data)) for name, c in correct.items()}


def model_cross_coherence(model: CoherenceModel, data, classifiers, batch_size=250, progress=True):
    """`model_cross_coherences` with one judge set -> CrossCoherence."""
    return model_cross_coherences(model, data, {"": classifiers}, batch_size, progress)[""]


def sample_predictions(sample, judges, n, batch_size=500, progress=True, desc="joint coherence"):
    """Predicted digits [n, M] of n joint samples from sample(k) -> images [k, M, 3, 28, 28],
    drawn `batch_size` at a time (10,000 never sit in memory at once) and scored by every judge
    set of `judges` ({name: Classifiers}) -> {name: predictions}. Scoring draws no random numbers,
    so the samples do not depend on how many judge sets score them."""
    preds = {name: [] for name in judges}
    for s in tqdm(range(0, n, batch_size), desc=desc, disable=not progress):
        x = sample(min(batch_size, n - s)).detach()
        for name, classifiers in judges.items():
            preds[name].append(predict(classifiers, x))
    return {name: torch.cat(p) for name, p in preds.items()}


@torch.no_grad()
def judged_cross_generations(model, data, judges, per_digit=10, seed=0):
    """For a look by eye: `per_digit` test tuples of each digit, every modality cross-generated from
    a random other one, with each judge set's answers. Returns (images [M, 10, per_digit, 3, 28, 28]:
    target t generated from a source other than t; {name: answers [M, 10, per_digit]})."""
    g = torch.Generator().manual_seed(seed)
    labels = data.labels.cpu()
    pick = torch.cat([(labels == d).nonzero()[:, 0][torch.randperm(int((labels == d).sum()), generator=g)[:per_digit]]
                      for d in range(10)])
    x, _ = data[pick.to(data.images.device)]
    torch.manual_seed(seed)
    with evaluating(model):
        gen = model.cross_generate_all(x).detach().cpu()  # [M(src), n, M(tgt), ...]
    M, n = gen.shape[0], len(pick)
    images, answers = [], {name: [] for name in judges}
    for t in range(M):
        src = torch.tensor([s for s in range(M) if s != t])[torch.randint(M - 1, (n,), generator=g)]
        full = gen[src, torch.arange(n)]  # [n, M, ...]: every judge reads its own modality
        images.append(full[:, t].reshape(10, per_digit, *full.shape[2:]))
        for name, classifiers in judges.items():
            answers[name].append(predict(classifiers, full)[:, t].reshape(10, per_digit))
    return torch.stack(images), {name: torch.stack(a) for name, a in answers.items()}


def model_joint_coherence(model: CoherenceModel, classifiers, n=10_000, batch_size=500, progress=True):
    """Joint coherence of n samples from model.sample. Returns (coherence, predictions [n, M]) so
    callers can also check the digit histogram (a prior collapsed onto one digit is trivially
    coherent)."""
    pred = sample_predictions(model.sample, {"": classifiers}, n, batch_size, progress)[""]
    return joint_agreement(pred).double().mean().item(), pred


class CoherenceProbe:
    """Coherence during training: cross coherence on a fixed test subset and joint coherence of
    a few prior samples, cheap enough to run every few hundred steps (the trainer's
    `train.eval_every`). It draws its randomness from its own seed and restores the global RNG
    state afterwards, so a run with probes trains exactly as one without."""

    def __init__(self, classifiers, test_data, n_joint=1000, seed=0):
        self.classifiers, self.test, self.n_joint, self.seed = classifiers, test_data, n_joint, seed

    def __call__(self, model):
        cpu_state = torch.get_rng_state()
        cuda_state = torch.cuda.get_rng_state() if self.test.images.is_cuda else None
        torch.manual_seed(self.seed)
        try:
            with evaluating(model):
                cross = model_cross_coherence(model, self.test, self.classifiers, progress=False)
                joint, pred = model_joint_coherence(model, self.classifiers, self.n_joint, progress=False)
                x, y = self.test[:]
                # each modality from its own posterior sample (w_m too, for MMVAE+): has it learned the digit at all?
                rec = (predict(self.classifiers, model.reconstruct(x)) == y.cpu()[:, None]).double().mean().item()
        finally:
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state)
        # the share of the commonest digit among modality 0's joint samples: a prior collapsed
        # onto one digit is trivially coherent, so read joint coherence beside it
        top = torch.bincount(pred[:, 0], minlength=10).max().item() / len(pred)
        return {"cross_coherence": cross.mean, "joint_coherence": joint, "joint_top_digit": top,
                "self_reconstruction": rec}
