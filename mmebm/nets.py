"""Networks for PolyMNIST, built for G same-shaped networks at once, plus f_alpha.

The M modality encoders (and decoders) share one architecture but not weights.
Every parametric layer here stores the weights of its G copies stacked along the
output dimension, so one grouped convolution / batched matmul runs all copies
(`forward(x)`, activations laid out [N, G*C, H, W]), while `forward(x, g)` runs
copy g alone on [N, C, H, W] with a slice of the same weights: the plain
per-modality loop, kept as the reference the batched path is tested against.

Encoder / Decoder `forward(x)` picks how to run the copies (`CopyNet.grouped_kernels`):
grouped kernels on CUDA, where one kernel per layer is the point; elsewhere (CPU) copy by
copy, `forward(x_g, g)` on batch chunks of at most `CopyNet.chunk` samples, outputs stacked.
Measured on a 2-core CPU (issue #3), the grouped path was 0.6-0.8x the speed of the loop:
oneDNN's grouped convolutions are slower than G separate ones, and the batched activations
(G times the loop's, and the decoder runs N*M samples) lose cache locality. Running the
separate convs on channel slices of [N, G*C, H, W] costs more in slicing copies than it
gains, and a copy-major [G*N, C, H, W] layout with per-copy convs reached only ~0.9x; copy
by copy in 128-sample chunks is the loop's arithmetic in the loop's sizes, hence as fast.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------- layers

class GConv2d(nn.Module):
    """G independent Conv2d (or ConvTranspose2d) with stacked weights."""

    grouped = True

    def __init__(self, G, cin, cout, k, stride=1, padding=0, bias=True, transpose=False, output_padding=0):
        super().__init__()
        self.G, self.cin, self.cout, self.stride, self.padding, self.transpose = G, cin, cout, stride, padding, transpose
        self.output_padding = output_padding  # transposed convs only: extra rows/columns on one side
        # conv: [G*cout, cin, k, k]; transposed conv: [G*cin, cout, k, k] (torch's grouped layouts)
        shape = (G * cin, cout, k, k) if transpose else (G * cout, cin, k, k)
        fan_in = (cout if transpose else cin) * k * k
        bound = 1 / math.sqrt(fan_in)  # the distribution of torch's default conv init
        self.weight = nn.Parameter(torch.empty(shape).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(G * cout).uniform_(-bound, bound)) if bias else None

    def forward(self, x, g=None):
        w, b, groups = self.weight, self.bias, self.G
        if g is not None:
            n = self.cin if self.transpose else self.cout
            w, groups = w[g * n:(g + 1) * n], 1
            b = None if b is None else b[g * self.cout:(g + 1) * self.cout]
        if self.transpose:
            return F.conv_transpose2d(x, w, b, self.stride, self.padding, self.output_padding, groups=groups)
        return F.conv2d(x, w, b, self.stride, self.padding, groups=groups)


class GLinear(nn.Module):
    """G independent Linear layers: x [N, G, cin] -> [N, G, cout] as one batched matmul."""

    grouped = True

    def __init__(self, G, cin, cout):
        super().__init__()
        bound = 1 / math.sqrt(cin)
        self.weight = nn.Parameter(torch.empty(G, cin, cout).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(G, cout).uniform_(-bound, bound))

    def forward(self, x, g=None):
        if g is not None:
            return torch.addmm(self.bias[g], x, self.weight[g])
        return torch.baddbmm(self.bias[:, None], x.transpose(0, 1), self.weight).transpose(0, 1)


class Flatten(nn.Module):
    """[N, G*C, H, W] -> [N, G, C*H*W] (or [N, C, H, W] -> [N, C*H*W] for one copy)."""

    grouped = True

    def __init__(self, G):
        super().__init__()
        self.G = G

    def forward(self, x, g=None):
        return x.flatten(1) if g is not None else x.reshape(x.shape[0], self.G, -1)


class Unflatten(nn.Module):
    """[N, G, C*H*W] -> [N, G*C, H, W] (or [N, C*H*W] -> [N, C, H, W])."""

    grouped = True

    def __init__(self, G, C, H, W, channels_last=False):
        super().__init__()
        self.G, self.C, self.H, self.W, self.channels_last = G, C, H, W, channels_last

    def forward(self, x, g=None):
        x = x.reshape(x.shape[0], (1 if g is not None else self.G) * self.C, self.H, self.W)
        # the grouped path runs in channels_last: oneDNN's grouped convs are much faster so
        # (this layout only matters where the grouped kernels run: CUDA, or forced on CPU)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and g is None else x


class GSequential(nn.Sequential):
    """Sequential that hands the copy index g to the layers that have copies."""

    def forward(self, x, g=None):
        for layer in self:
            x = layer(x, g) if getattr(layer, "grouped", False) else layer(x)
        return x


class ResBlock(nn.Module):
    """MMVAE+ ResNet block: shortcut + 0.1 * conv3x3(act(conv3x3(act(x)))); the shortcut
    is a bias-free 1x1 conv when the width changes, the hidden width min(cin, cout)."""

    grouped = True

    def __init__(self, G, cin, cout):
        super().__init__()
        hidden = min(cin, cout)
        self.conv0 = GConv2d(G, cin, hidden, 3, padding=1)
        self.conv1 = GConv2d(G, hidden, cout, 3, padding=1)
        self.shortcut = GConv2d(G, cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x, g=None):
        s = x if self.shortcut is None else self.shortcut(x, g)
        # x feeds the shortcut too, so only the second activation can be in place
        dx = self.conv1(F.leaky_relu(self.conv0(F.leaky_relu(x, 0.2), g), 0.2, inplace=True), g)
        return torch.add(s, dx, alpha=0.1)  # one fused kernel: these tensors are memory-bound on CPU


# ----------------------------------------------------------------------------- encoders / decoders

class CopyNet(nn.Module):
    """Base of Encoder / Decoder: how forward(x) runs the copies (see the module docstring).

    grouped_kernels: None (default) grouped kernels on CUDA, copy by copy elsewhere; True /
    False force one or the other (on an instance, as `bench --impl grouped` does, or the class).
    chunk: the batch chunk, in samples, of the copy-by-copy path (the loop's call size: the
    models call a decoder copy with K*B samples); 128 was ~4% faster than no chunking for
    the conv nets on CPU and no different for the ResNet ones.
    """

    grouped_kernels = None
    chunk = 128

    def use_grouped_kernels(self, x):
        return x.is_cuda if self.grouped_kernels is None else bool(self.grouped_kernels)

    def forward_copy_by_copy(self, x):
        """forward(x[:, g], g) of every copy g (on batch chunks), stacked along dim 1; each
        output of forward (a tensor, or a tuple of tensors / Nones) is stacked alike."""
        outs = []
        for g in range(x.shape[1]):
            parts = [self.forward(c, g) for c in x[:, g].split(self.chunk)]
            single = torch.is_tensor(parts[0])
            parts = [(p,) if single else p for p in parts]
            outs.append([None if p[0] is None else p[0] if len(p) == 1 else torch.cat(p) for p in zip(*parts)])
        out = [None if o[0] is None else torch.stack(o, 1) for o in zip(*outs)]
        return out[0] if single else tuple(out)


def resnet_body(G):
    """MMVAE+ PolyMNIST encoder branch: 3x28x28 -> 256*7*7 features."""
    return GSequential(
        GConv2d(G, 3, 64, 3, padding=1),
        ResBlock(G, 64, 64),
        nn.AvgPool2d(3, stride=2, padding=1),  # 28 -> 14
        ResBlock(G, 64, 128),
        nn.AvgPool2d(3, stride=2, padding=1),  # 14 -> 7
        ResBlock(G, 128, 256),
        Flatten(G),
    ), 256 * 7 * 7


# the conv decoder's 2x upsamplings (transposed convs), by model.conv_upsample; see Decoder
UPSAMPLE = {"k4": dict(k=4, stride=2, padding=1), "mopoe": dict(k=3, stride=2, padding=1, output_padding=1)}


def act(leak):
    """ReLU (leak 0, MoPoE's) or LeakyReLU: a ReLU unit that is negative on every input gets no
    gradient again, and the narrow last layer of the conv encoder loses whole branches so."""
    return nn.LeakyReLU(leak) if leak else nn.ReLU()


def conv_body(G, hidden, width=32, leak=0.0):
    """MoPoE PolyMNIST encoder: conv 3->32->64->128 (k3 s2 p1), linear to `hidden`; `width`
    scales the channels (32: MoPoE's), `leak` is the activations' negative slope."""
    c1, c2, c3 = width, 2 * width, 4 * width
    return GSequential(
        GConv2d(G, 3, c1, 3, 2, 1), act(leak),    # 28 -> 14
        GConv2d(G, c1, c2, 3, 2, 1), act(leak),   # 14 -> 7
        GConv2d(G, c2, c3, 3, 2, 1), act(leak),   # 7 -> 4
        Flatten(G),
        GLinear(G, c3 * 4 * 4, hidden), act(leak),
    ), hidden


class Encoder(CopyNet):
    """The M unimodal encoders q(z|x_m) (and q(w|x_m) for MMVAE+).

    As in MMVAE+, z and w come from separate branches of the same architecture; the
    grouped path runs all n_branch * M branches as one network of G = n_branch * M copies.
    forward(x [N, M, 3, 28, 28]) -> z_loc, z_raw, w_loc, w_raw, each [N, M, dim]
    (w_* None without w); forward(x_m [N, 3, 28, 28], g=m) -> the same for modality m, [N, dim].
    `*_raw` are pre-activation scales (see distributions.posterior_scale).
    """

    def __init__(self, M, z_dim, w_dim=0, net="resnet", channels_last=True, width=32, leak=0.0):
        super().__init__()
        self.M, self.z_dim, self.w_dim, self.channels_last = M, z_dim, w_dim, channels_last
        self.n_branch = 2 if w_dim else 1
        G = self.n_branch * M  # copy index = branch * M + m; branch 0 is z, branch 1 is w
        if net == "resnet":
            self.body, feat = resnet_body(G)
        elif net == "conv":
            self.body, feat = conv_body(G, z_dim + w_dim, width, leak)  # MoPoE: hidden width = style + class dims
        else:
            raise ValueError(f"unknown net {net!r}")
        self.head_z = GLinear(M, feat, 2 * z_dim)
        self.head_w = GLinear(M, feat, 2 * w_dim) if w_dim else None

    def forward(self, x, g=None):
        if g is not None:  # one modality, each branch on its own, as the reference code does
            z_loc, z_raw = self.head_z(self.body(x, g), g).chunk(2, -1)
            if not self.w_dim:
                return z_loc, z_raw, None, None
            w_loc, w_raw = self.head_w(self.body(x, self.M + g), g).chunk(2, -1)
            return z_loc, z_raw, w_loc, w_raw
        if not self.use_grouped_kernels(x):
            return self.forward_copy_by_copy(x)
        N, M = x.shape[:2]
        h = x.repeat(1, self.n_branch, 1, 1, 1).flatten(1, 2)  # [N, G*3, H, W]
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = self.body(h).view(N, self.n_branch, M, -1)
        z_loc, z_raw = self.head_z(h[:, 0]).chunk(2, -1)
        if not self.w_dim:
            return z_loc, z_raw, None, None
        w_loc, w_raw = self.head_w(h[:, 1]).chunk(2, -1)
        return z_loc, z_raw, w_loc, w_raw


class Decoder(CopyNet):
    """The M decoders p(x_m | z, w): forward(u [N, M, in_dim]) -> [N, M, 3, 28, 28] means,
    copy m decoding u[:, m]; forward(u [N, in_dim], g=m) -> [N, 3, 28, 28]."""

    def __init__(self, M, in_dim, net="resnet", channels_last=True, width=32, leak=0.0, upsample="k4"):
        super().__init__()
        self.M = M
        c1, c2, c3 = width, 2 * width, 4 * width  # conv only (32: MoPoE's)
        # the last two 2x upsamplings of the conv decoder (model.conv_upsample): kernel 4, padding 1
        # ("k4", ours), or thomassutter/MoPoE's kernel 3, padding 1, output_padding 1 ("mopoe")
        if upsample not in UPSAMPLE:
            raise ValueError(f"unknown model.conv_upsample {upsample!r}: one of {sorted(UPSAMPLE)}")
        up = UPSAMPLE[upsample]
        if net == "resnet":  # MMVAE+ PolyMNIST decoder
            self.net = GSequential(
                GLinear(M, in_dim, 256 * 7 * 7),
                Unflatten(M, 256, 7, 7, channels_last),
                ResBlock(M, 256, 128),
                nn.Upsample(scale_factor=2),  # 7 -> 14
                ResBlock(M, 128, 64),
                nn.Upsample(scale_factor=2),  # 14 -> 28
                ResBlock(M, 64, 64),
                nn.LeakyReLU(0.2, inplace=True),
                GConv2d(M, 64, 3, 3, padding=1),  # no output nonlinearity (MMVAE+)
            )
        elif net == "conv":  # MoPoE PolyMNIST decoder, the encoder mirrored
            self.net = GSequential(
                GLinear(M, in_dim, c3 * 4 * 4), act(leak),
                Unflatten(M, c3, 4, 4, channels_last),
                GConv2d(M, c3, c2, 3, 2, 1, transpose=True), act(leak),  # 4 -> 7
                GConv2d(M, c2, c1, **up, transpose=True), act(leak),  # 7 -> 14
                GConv2d(M, c1, 3, **up, transpose=True),              # 14 -> 28
            )
        else:
            raise ValueError(f"unknown net {net!r}")

    def forward(self, u, g=None):
        if g is None and not self.use_grouped_kernels(u):
            return self.forward_copy_by_copy(u)
        out = self.net(u, g)
        if g is not None:
            return out
        return out.reshape(out.shape[0], self.M, -1, *out.shape[-2:])


# ----------------------------------------------------------------------------- EBM

ACTIVATIONS = {"leakyrelu": lambda: nn.LeakyReLU(0.2), "gelu": nn.GELU, "silu": nn.SiLU}


class EnergyMLP(nn.Module):
    """f_alpha: dim(z) -> hidden -> hidden -> 1 (Pang et al. 2020), energy per sample [N]."""

    def __init__(self, z_dim, hidden=200, act="leakyrelu"):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(z_dim, hidden), ACTIVATIONS[act](),
            nn.Linear(hidden, hidden), ACTIVATIONS[act](),
            nn.Linear(hidden, 1),
        )

    def forward(self, z):
        return self.net(z).squeeze(-1)
