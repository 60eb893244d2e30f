"""Short-run Langevin dynamics on a latent energy, eager or captured as one CUDA graph."""

import torch


def sample_langevin(energy, z0, n_steps=60, step_size=0.4, noise=True, return_chain=False, eps=None):
    """Run z_{k+1} = z_k - (s^2 / 2) grad_z E(z_k) + s * eps_k from z0.

    energy(z) returns the per-sample energy [N] (minus the log density up to a constant,
    base density included, e.g. f_alpha(z) - log p0(z)). Only z is differentiated: the
    energy's parameters get no gradient, and the result is detached. eps: the noise
    [n_steps, *z0.shape] to use instead of a fresh torch.randn_like per step (the CUDA graph
    and the tests pass it). Returns the final state, or with return_chain=True the stacked
    states z_0..z_n [n_steps + 1, *z0.shape].
    """
    z = z0.detach()
    chain = [z] if return_chain else None
    with torch.enable_grad():  # generation may call this under no_grad
        for k in range(n_steps):
            z = z.requires_grad_(True)
            (grad,) = torch.autograd.grad(energy(z).sum(), z)
            z = z.detach() - 0.5 * step_size ** 2 * grad
            if noise:
                z = z + step_size * (torch.randn_like(z) if eps is None else eps[k])
            if return_chain:
                chain.append(z)
    return torch.stack(chain) if return_chain else z


class LangevinGraph:
    """The whole chain for one batch shape, captured once as a CUDA graph and replayed.

    The eager chain launches each of its 60 steps' small kernels (f_alpha forward, its input
    gradient through autograd, the update) from Python: on a GPU it is bound by those launches (issue #26: 47-83 % of a training step).
    A replay launches them all at once. The graph reads its inputs from fixed buffers, z0 and
    the noise eps [n_steps, *shape], and the energy's parameters from their storage, so an
    optimizer that updates them in place (torch.optim does) is seen by the next replay; a
    module moved or re-created needs a new graph (EBMPrior keys its graphs by storage).
    Given the same z0 and eps, the states equal the eager chain's to float rounding.
    """

    def __init__(self, energy, shape, n_steps, step_size, noise, device, dtype=torch.float32):
        self.z0 = torch.zeros(shape, device=device, dtype=dtype)
        self.eps = torch.zeros(n_steps, *shape, device=device, dtype=dtype) if noise else None
        run = lambda: sample_langevin(energy, self.z0, n_steps, step_size, noise, eps=self.eps)  # noqa: E731
        # warm up on a side stream first (cuBLAS handles, autograd's buffers): torch.cuda.graphs' rule
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):
                run()
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = run()

    def __call__(self, z0, eps=None):
        """The chain's final state from z0; eps None draws fresh noise (one kernel)."""
        self.z0.copy_(z0)
        if self.eps is not None and eps is None:
            self.eps.normal_()
        elif self.eps is not None:
            self.eps.copy_(eps)
        self.graph.replay()
        return self.out.clone()  # the next replay overwrites self.out


class ReplayBuffer:
    """Persistent chains (Du & Mordatch 2019): each call starts most chains where earlier chains
    ended, so over many short runs they travel as far as one long run, and a fresh share
    `reinit` starts from the base density to keep the buffer from collapsing onto one mode.

        z0 = buffer.starts(n, p0.sample); z = chain(z0); buffer.push(z)
    """

    def __init__(self, size=10_000, reinit=0.05):
        self.size, self.reinit = size, reinit
        self.z = None  # [<= size, D] chain states, oldest first

    def starts(self, n, fresh):
        """n starting states: a `reinit` share (at least all of them while the buffer holds fewer
        than n) from fresh(k), the rest drawn uniformly from the buffer."""
        k = n if self.z is None or len(self.z) < n else int(torch.rand(n).lt(self.reinit).sum())
        z0 = fresh(k)
        if k < n:
            z0 = torch.cat([z0, self.z[torch.randint(len(self.z), (n - k,))].to(z0)])
        return z0

    def push(self, z):
        """Add the chains' end states, dropping the oldest beyond `size`."""
        z = z.detach()
        self.z = z if self.z is None else torch.cat([self.z, z])[-self.size:]
