"""Networks for CUB image-captions: 64x64 images and 32-word captions, one network per modality.

The modalities differ in shape, so unlike PolyMNIST (mmebm/nets.py) nothing is stacked: the
model holds a `ModalityEncoders` / `ModalityDecoders` pair that runs one network per modality
and keeps the call signatures of nets.Encoder / nets.Decoder, with x a tuple of tensors.

Image (64x64): four conv 4x4 stride 2 layers 3->32->64->128->256 (64 -> 4), linear heads; the
decoder mirrors it with transposed convs and has no output nonlinearity (as MMVAE+'s image
decoders). Caption: the MMVAE CUB sentence networks' layout (Shi et al. 2019): the one-hot words
[32, V] are embedded to [32, 128] (an embedding lookup is the linear map of a one-hot vector),
read as a 1-channel 32x128 image by five convs down to 512x4x4, and a 4x4 conv head; the decoder
mirrors it back to [32, 128] and maps each position to logits over the vocabulary. MMVAE's
batch norm layers are left out (the sampler decodes single latents; no train/eval difference).
These sizes are ours: SPEC.md does not list MMVAE+'s CUB networks.
"""

import torch
import torch.nn as nn

EMB = 128  # word embedding width (MMVAE CUB sentence networks)


class Heads(nn.Module):
    """Linear heads of one encoder branch: features -> (loc, raw scale)."""

    def __init__(self, feat, dim):
        super().__init__()
        self.out = nn.Linear(feat, 2 * dim)

    def forward(self, h):
        return self.out(h).chunk(2, -1)


def image_body():
    """3x64x64 -> 256*4*4 features."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(),     # 64 -> 32
        nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),    # 32 -> 16
        nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(),   # 16 -> 8
        nn.Conv2d(128, 256, 4, 2, 1), nn.ReLU(),  # 8 -> 4
        nn.Flatten(),
    ), 256 * 4 * 4


class TextBody(nn.Module):
    """Word ids [N, 32] -> 512*4*4 features (MMVAE CUB sentence encoder layout, no batch norm)."""

    def __init__(self, vocab_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, EMB)
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(),                     # 32x128 -> 16x64
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),                    # -> 8x32
            nn.Conv2d(64, 128, 4, 2, 1), nn.ReLU(),                   # -> 4x16
            nn.Conv2d(128, 256, (1, 4), (1, 2), (0, 1)), nn.ReLU(),   # -> 4x8
            nn.Conv2d(256, 512, (1, 4), (1, 2), (0, 1)), nn.ReLU(),   # -> 4x4
            nn.Flatten(),
        )

    def forward(self, s):
        return self.net(self.embed(s).unsqueeze(1))


def _body(kind, vocab_size):
    if kind == "image64":
        return image_body()
    if kind == "text":
        if vocab_size <= 0:
            raise ValueError("the caption networks need model.vocab_size > 0 (the trainer sets it from the data)")
        return TextBody(vocab_size), 512 * 4 * 4
    raise ValueError(f"no CUB network for modality {kind!r}")


class UniEncoder(nn.Module):
    """q(z|x_m) and q(w|x_m) of one modality: separate z and w branches of the same body (MMVAE+)."""

    def __init__(self, kind, z_dim, w_dim=0, vocab_size=0):
        super().__init__()
        self.body_z, feat = _body(kind, vocab_size)
        self.head_z = Heads(feat, z_dim)
        self.body_w = _body(kind, vocab_size)[0] if w_dim else None
        self.head_w = Heads(feat, w_dim) if w_dim else None

    def forward(self, x):
        z_loc, z_raw = self.head_z(self.body_z(x))
        if self.body_w is None:
            return z_loc, z_raw, None, None
        w_loc, w_raw = self.head_w(self.body_w(x))
        return z_loc, z_raw, w_loc, w_raw


class ImageDecoder(nn.Module):
    """[N, in_dim] -> image means [N, 3, 64, 64]."""

    def __init__(self, in_dim):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, 256 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (256, 4, 4)),
            nn.ConvTranspose2d(256, 128, 4, 2, 1), nn.ReLU(),  # 4 -> 8
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),   # 8 -> 16
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),    # 16 -> 32
            nn.ConvTranspose2d(32, 3, 4, 2, 1),                # 32 -> 64
        )

    def forward(self, u):
        return self.net(u)


class TextDecoder(nn.Module):
    """[N, in_dim] -> word logits [N, 32, V] (the sentence encoder mirrored, then embedding -> vocabulary)."""

    def __init__(self, in_dim, vocab_size):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError("the caption decoder needs model.vocab_size > 0 (the trainer sets it from the data)")
        self.net = nn.Sequential(
            nn.Unflatten(1, (in_dim, 1, 1)),
            nn.ConvTranspose2d(in_dim, 512, 4, 1, 0), nn.ReLU(),                 # -> 4x4
            nn.ConvTranspose2d(512, 256, (1, 4), (1, 2), (0, 1)), nn.ReLU(),      # -> 4x8
            nn.ConvTranspose2d(256, 128, (1, 4), (1, 2), (0, 1)), nn.ReLU(),      # -> 4x16
            nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(),                      # -> 8x32
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),                       # -> 16x64
            nn.ConvTranspose2d(32, 1, 4, 2, 1),                                   # -> 32x128
        )  # no ReLU on this one-channel map: dead units there silence the whole caption
        self.to_vocab = nn.Linear(EMB, vocab_size)

    def forward(self, u):
        return self.to_vocab(self.net(u).squeeze(1))


class ModalityEncoders(nn.Module):
    """One UniEncoder per modality; forward(x tuple of M tensors) -> z_loc, z_raw, w_loc, w_raw each
    [N, M, dim] (w's None without w); forward(x_m, g=m) -> the same for modality m, [N, dim]."""

    def __init__(self, kinds, z_dim, w_dim=0, vocab_size=0):
        super().__init__()
        self.nets = nn.ModuleList(UniEncoder(k, z_dim, w_dim, vocab_size) for k in kinds)

    def forward(self, x, g=None):
        if g is not None:
            return self.nets[g](x)
        outs = [net(x_m) for net, x_m in zip(self.nets, x)]
        return tuple(None if o[0] is None else torch.stack(o, 1) for o in zip(*outs))


class ModalityDecoders(nn.Module):
    """One decoder per modality; forward(u [N, M, in_dim]) -> tuple of M outputs [N, *event_m],
    decoder d reading u[:, d]; forward(u [N, in_dim], g=d) -> decoder d's output."""

    def __init__(self, kinds, in_dim, vocab_size=0):
        super().__init__()
        self.nets = nn.ModuleList(ImageDecoder(in_dim) if k == "image64" else TextDecoder(in_dim, vocab_size)
                                  for k in kinds)

    def forward(self, u, g=None):
        if g is not None:
            return self.nets[g](u)
        return tuple(net(u[:, d]) for d, net in enumerate(self.nets))
