"""Distributions: diagonal Normal and Laplace, one-hot categorical, and helpers.

Small and explicit instead of torch.distributions so that every model tensor
keeps the [..., D] layout we want and log-densities are summed over the event
dimension in one place (tests check them against torch.distributions).
"""

import math

import torch
import torch.nn.functional as F

LOG_2 = math.log(2.0)
LOG_2PI = math.log(2.0 * math.pi)


class _LocScale:
    """A diagonal location-scale family; log_prob sums over the last `event_dims` dimensions."""

    def __init__(self, loc, scale, event_dims=1):
        self.loc, self.scale, self.event_dims = loc, scale, event_dims

    def detach(self):
        return type(self)(self.loc.detach(), self.scale.detach(), self.event_dims)

    @property
    def mean(self):
        return self.loc

    def _draw(self, shape, sampler):
        return sampler(tuple(shape) + self.loc.shape, dtype=self.loc.dtype, device=self.loc.device)


class Normal(_LocScale):
    """Diagonal Gaussian."""

    def log_prob(self, x):
        lp = -0.5 * ((x - self.loc) / self.scale) ** 2 - self.scale.log() - 0.5 * LOG_2PI
        return _sum_event(lp, self.event_dims)

    def rsample(self, shape=()):
        return self.loc + self.scale * self._draw(shape, torch.randn)


class Laplace(_LocScale):
    """Diagonal Laplace."""

    def log_prob(self, x):
        lp = -(x - self.loc).abs() / self.scale - self.scale.log() - LOG_2
        return _sum_event(lp, self.event_dims)

    def rsample(self, shape=()):
        # inverse CDF: u in (-1, 1), x = loc - scale * sign(u) * log(1 - |u|);
        # keep |u| < 1 so the log stays finite
        u = 2 * self._draw(shape, torch.rand) - 1
        u = u.clamp(-1 + torch.finfo(u.dtype).eps, 1 - torch.finfo(u.dtype).eps)
        return self.loc - self.scale * u.sign() * torch.log1p(-u.abs())


class OneHotCategorical:
    """Categorical over the last dim, observed as one-hot (CUB captions); log_prob sums
    over the `event_dims` dimensions before the class dim (e.g. the words of a caption)."""

    def __init__(self, logits, event_dims=1):
        self.logits, self.event_dims = logits, event_dims

    def log_prob(self, x):
        """x one-hot [..., V], or the class ids [...] (integer dtype; no one-hot tensor is built)."""
        log_p = F.log_softmax(self.logits, dim=-1)
        if x.dtype.is_floating_point:
            lp = (x * log_p).sum(-1)
        else:
            lp = log_p.gather(-1, x.expand(log_p.shape[:-1]).unsqueeze(-1)).squeeze(-1)
        return _sum_event(lp, self.event_dims)

    @property
    def mean(self):
        return F.softmax(self.logits, dim=-1)


FAMILIES = {"normal": Normal, "gaussian": Normal, "laplace": Laplace}


def family(name):
    return FAMILIES[name.lower()]


def posterior_scale(raw, name, eps):
    """Encoder output -> positive scale, as in MMVAE / MMVAE+: Laplace scales are
    softmax(raw) * D + eps (their total is pinned to D), Normal scales softplus(raw) + eps."""
    if family(name) is Laplace:
        return F.softmax(raw, dim=-1) * raw.shape[-1] + eps
    return F.softplus(raw) + eps


def likelihood(name, mean, scale, event_dims=3):
    """p(x | decoder output): fixed-scale Normal/Laplace around `mean`, or one-hot
    categorical with `mean` read as logits (scale ignored)."""
    if name.lower() == "categorical":
        return OneHotCategorical(mean, event_dims)
    return family(name)(mean, torch.as_tensor(scale, dtype=mean.dtype, device=mean.device), event_dims)


def log_mean_exp(x, dim):
    return torch.logsumexp(x, dim) - math.log(x.shape[dim])


def _sum_event(lp, event_dims):
    return lp.sum(tuple(range(-event_dims, 0))) if event_dims > 0 else lp
