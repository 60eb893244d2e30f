"""Short-run Langevin dynamics on a latent energy."""

import torch


def sample_langevin(energy, z0, n_steps=60, step_size=0.4, noise=True, return_chain=False):
    """Run z_{k+1} = z_k - (s^2 / 2) grad_z E(z_k) + s * eps_k from z0.

    energy(z) returns the per-sample energy [N] (minus the log density up to a constant,
    base density included, e.g. f_alpha(z) - log p0(z)). Only z is differentiated: the
    energy's parameters get no gradient, and the result is detached. Returns the final
    state, or with return_chain=True the stacked states z_0..z_n [n_steps + 1, *z0.shape].
    """
    z = z0.detach()
    chain = [z] if return_chain else None
    with torch.enable_grad():  # generation may call this under no_grad
        for _ in range(n_steps):
            z = z.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(z).sum(), z)
            z = z.detach() - 0.5 * step_size ** 2 * grad
            if noise:
                z = z + step_size * torch.randn_like(z)
            if return_chain:
                chain.append(z)
    return torch.stack(chain) if return_chain else z
