"""Two-dimensional toys for the objectives tutorial (notebooks/01_objectives.py).

- a ring of Gaussians: the "shared information" a unimodal prior cannot hold;
- `ToyModalities`: M noisy maps of the shared z to small observations, the toy analogue
  of PolyMNIST's modalities (they share z only, each adds its own noise);
- `QuadraticEnergy`: f(z) = c/2 |z|^2, whose tilt of N(0, I) is N(0, I / (1 + c)) in
  closed form, to check samplers and gradients against;
- `MLPEncoder` / `MLPDecoder`: small MLPs with the call signatures of nets.Encoder /
  nets.Decoder, so `MultimodalVAE(cfg, encoder=..., decoder=...)` runs on the toy.
"""

import math

import torch
import torch.nn as nn

from .nets import GLinear, GSequential


# ----------------------------------------------------------------------------- ring of Gaussians

def ring_centers(n_modes=8, radius=2.0):
    """The mode centers [n_modes, 2], equally spaced on a circle, the first on the x axis."""
    angle = 2 * math.pi * torch.arange(n_modes, dtype=torch.float64) / n_modes
    return (radius * torch.stack([angle.cos(), angle.sin()], -1)).float()


def sample_ring(n, n_modes=8, radius=2.0, std=0.2, generator=None):
    """n samples of the equal-weight mixture of N(center_k, std^2 I): (z [n, 2], mode [n])."""
    mode = torch.randint(n_modes, (n,), generator=generator)
    z = ring_centers(n_modes, radius)[mode] + std * torch.randn(n, 2, generator=generator)
    return z, mode


def ring_log_prob(z, n_modes=8, radius=2.0, std=0.2):
    """log density of that mixture at z [..., 2] -> [...]."""
    c = ring_centers(n_modes, radius).to(z)
    d2 = ((z[..., None, :] - c) ** 2).sum(-1)  # [..., n_modes]
    log_comp = -0.5 * d2 / std ** 2 - 2 * math.log(std) - math.log(2 * math.pi)
    return torch.logsumexp(log_comp, -1) - math.log(n_modes)


def nearest_mode(z, centers):
    """Index of the nearest center [K, D] for each point z [..., D], and its distance."""
    d = torch.cdist(z.reshape(-1, z.shape[-1]), centers.to(z))
    dist, idx = d.min(-1)
    return idx.reshape(z.shape[:-1]), dist.reshape(z.shape[:-1])


# ----------------------------------------------------------------------------- modalities

class ToyModalities:
    """x_m = G_m(z) + noise * eps, m = 0..M-1, eps ~ N(0, I), x_m in R^x_dim.

    G_0 is linear (a fixed random matrix); the others are nonlinear: a fixed random linear
    map, then a smooth warp x <- x + 0.5 sin(x_roll), so straight lines in z bend in x.
    The maps are drawn once from `seed` (fixed per instance, independent of the global RNG).
    """

    def __init__(self, n_modalities=2, x_dim=2, noise=0.1, z_dim=2, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.M, self.x_dim, self.noise = n_modalities, x_dim, noise
        # a random map with singular values in [0.8, 1.2]: no direction of z is crushed
        maps = []
        for _ in range(n_modalities):
            U, _, V = torch.linalg.svd(torch.randn(x_dim, z_dim, generator=g), full_matrices=False)
            s = 0.8 + 0.4 * torch.rand(min(x_dim, z_dim), generator=g)
            maps.append(U @ torch.diag(s) @ V)
        self.A = torch.stack(maps)  # [M, x_dim, z_dim]

    def mean(self, z):
        """Noise-free observations G_m(z): z [n, z_dim] -> [n, M, x_dim]."""
        x = torch.einsum("mxz,nz->nmx", self.A.to(z), z)
        warp = 0.5 * torch.sin(x.roll(1, -1))
        warp[:, 0] = 0  # modality 0 stays linear
        return x + warp

    def __call__(self, z, generator=None):
        """Noisy observations [n, M, x_dim] of the latents z [n, z_dim]."""
        x = self.mean(z)
        return x + self.noise * torch.randn(x.shape, generator=generator).to(x)

    def classify(self, x, centers):
        """For each modality, the mode whose noise-free image G_m(center) is nearest to x_m:
        x [n, M, x_dim] -> (mode [n, M], distance [n, M])."""
        images = self.mean(centers.to(x))  # [K, M, x_dim]
        out = [nearest_mode(x[:, m], images[:, m]) for m in range(self.M)]
        return torch.stack([o[0] for o in out], 1), torch.stack([o[1] for o in out], 1)


# ----------------------------------------------------------------------------- a closed-form EBM

class QuadraticEnergy(nn.Module):
    """f(z) = c/2 |z|^2 (c learnable): tilting p0 = N(0, I) by it gives N(0, I / (1 + c))."""

    def __init__(self, c=1.0):
        super().__init__()
        self.c = nn.Parameter(torch.as_tensor(float(c)))

    def forward(self, z):
        return 0.5 * self.c * (z ** 2).sum(-1)


# ----------------------------------------------------------------------------- small networks

def _mlp(M, cin, hidden, cout, depth=2):
    layers, width = [], cin
    for _ in range(depth):
        layers += [GLinear(M, width, hidden), nn.SiLU()]
        width = hidden
    return GSequential(*layers, GLinear(M, width, cout))


class MLPEncoder(nn.Module):
    """M MLP encoders, nets.Encoder's signature on vector data: forward(x [N, M, x_dim]) ->
    z_loc, z_raw, w_loc, w_raw [N, M, dim] (w's None without w); forward(x_m [N, x_dim], g=m)
    -> the same for modality m, [N, dim]. One trunk per modality feeds both heads."""

    def __init__(self, M, x_dim, z_dim, w_dim=0, hidden=64):
        super().__init__()
        self.z_dim, self.w_dim = z_dim, w_dim
        self.net = _mlp(M, x_dim, hidden, 2 * (z_dim + w_dim))

    def forward(self, x, g=None):
        out = self.net(x, g)
        z_loc, z_raw, w_out = out.split([self.z_dim, self.z_dim, 2 * self.w_dim], -1)
        if not self.w_dim:
            return z_loc, z_raw, None, None
        w_loc, w_raw = w_out.chunk(2, -1)
        return z_loc, z_raw, w_loc, w_raw


class MLPDecoder(nn.Module):
    """M MLP decoders, nets.Decoder's signature on vector data: forward(u [N, M, in_dim]) ->
    means [N, M, x_dim], decoder m reading u[:, m]; forward(u [N, in_dim], g=m) -> [N, x_dim]."""

    def __init__(self, M, in_dim, x_dim, hidden=64):
        super().__init__()
        self.net = _mlp(M, in_dim, hidden, x_dim)

    def forward(self, u, g=None):
        return self.net(u, g)
