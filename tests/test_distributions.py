import math

import pytest
import torch
import torch.distributions as td

from mmebm.distributions import (Laplace, Normal, OneHotCategorical, likelihood, log_mean_exp,
                                 posterior_scale)


def _params(seed=0, shape=(4, 3, 6)):
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(shape, generator=g, dtype=torch.float64)
    scale = torch.rand(shape, generator=g, dtype=torch.float64) * 2 + 0.1
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3
    return loc, scale, x


@pytest.mark.parametrize("ours, theirs", [(Normal, td.Normal), (Laplace, td.Laplace)])
def test_log_prob_matches_torch(ours, theirs):
    loc, scale, x = _params()
    expect = theirs(loc, scale).log_prob(x).sum(-1)
    torch.testing.assert_close(ours(loc, scale).log_prob(x), expect, rtol=1e-12, atol=1e-12)
    # event_dims=2 sums the last two dims
    expect2 = theirs(loc, scale).log_prob(x).sum((-1, -2))
    torch.testing.assert_close(ours(loc, scale, event_dims=2).log_prob(x), expect2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dist, var_factor", [(Normal, 1.0), (Laplace, 2.0)])
def test_rsample_moments_and_reparameterization(dist, var_factor):
    torch.manual_seed(0)
    loc = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    scale = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    n = 200_000
    s = dist(loc, scale).rsample((n,))
    assert s.shape == (n, 3)
    # sample mean within 5 standard errors; Laplace variance is 2 b^2
    sd = scale.detach() * math.sqrt(var_factor)
    assert ((s.mean(0) - loc).abs() < 5 * sd / math.sqrt(n)).all()
    torch.testing.assert_close(s.var(0), sd ** 2, rtol=0.02, atol=0)
    # pathwise: d sample / d loc = 1, d sample / d scale = (sample - loc) / scale
    s.sum().backward()
    torch.testing.assert_close(loc.grad, torch.full((3,), float(n)))
    torch.testing.assert_close(scale.grad, ((s - loc) / scale).sum(0).detach(), rtol=1e-3, atol=1e-2)


def test_laplace_rsample_is_finite_at_extremes():
    torch.manual_seed(0)
    s = Laplace(torch.zeros(10**6), torch.ones(10**6)).rsample()
    assert torch.isfinite(s).all()


def test_one_hot_categorical_matches_torch():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 7, 11, generator=g)  # batch 4, 7 words, 11 classes
    x = torch.nn.functional.one_hot(torch.randint(11, (4, 7), generator=g), 11).float()
    expect = td.OneHotCategorical(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(OneHotCategorical(logits).log_prob(x), expect)
    torch.testing.assert_close(likelihood("categorical", logits, None, 1).log_prob(x), expect)


def test_posterior_scale_parametrizations():
    raw = torch.randn(5, 8)
    lap = posterior_scale(raw, "laplace", 1e-6)  # softmax * D + eps: scales sum to D (1 + eps)
    torch.testing.assert_close(lap.sum(-1), torch.full((5,), 8 * (1 + 1e-6)))
    torch.testing.assert_close(lap, torch.softmax(raw, -1) * 8 + 1e-6)
    torch.testing.assert_close(posterior_scale(raw, "normal", 1e-6), torch.nn.functional.softplus(raw) + 1e-6)
    # zero logits give the unit scale
    torch.testing.assert_close(posterior_scale(torch.zeros(3, 4), "laplace", 0.0), torch.ones(3, 4))


@pytest.mark.parametrize("name, theirs", [("laplace", td.Laplace), ("normal", td.Normal)])
def test_likelihood_fixed_scale_sums_event(name, theirs):
    g = torch.Generator().manual_seed(2)
    mean, x = torch.rand(2, 5, 3, 4, 4, generator=g), torch.rand(2, 5, 3, 4, 4, generator=g)
    lp = likelihood(name, mean, 0.75, event_dims=3).log_prob(x)
    assert lp.shape == (2, 5)
    torch.testing.assert_close(lp, theirs(mean, 0.75).log_prob(x).sum((-1, -2, -3)))


def test_log_mean_exp():
    x = torch.tensor([[0.0, math.log(3.0)], [-1000.0, -1000.0]])
    torch.testing.assert_close(log_mean_exp(x, 1), torch.tensor([math.log(2.0), -1000.0]))
