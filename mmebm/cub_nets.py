"""Networks for CUB image-captions: 64x64 images and 32-word captions, one network per modality.

The modalities differ in shape, so unlike PolyMNIST (mmebm/nets.py) nothing is stacked: the
model holds a `ModalityEncoders` / `ModalityDecoders` pair that runs one network per modality
and keeps the call signatures of nets.Encoder / nets.Decoder, with x a tuple of tensors.
Two sets of networks, chosen by `net`:

net="conv" (ours, the light cpu profile). Image (64x64): four conv 4x4 stride 2 layers
3->32->64->128->256 (64 -> 4), linear heads; the decoder mirrors it with transposed convs and has
no output nonlinearity (as MMVAE+'s image decoders). Caption: the MMVAE CUB sentence networks'
layout (Shi et al. 2019): the one-hot words [32, V] are embedded to [32, 128] (an embedding
lookup is the linear map of a one-hot vector), read as a 1-channel 32x128 image by five convs
down to 512x4x4, and a 4x4 conv head; the decoder mirrors it back to [32, 128] and maps each
position to logits over the vocabulary. The widths given are for model.conv_width = 32 (the
first layer's channels); every layer scales with it. MMVAE's batch norm layers are left out (the sampler
decodes single latents; no train/eval difference). These sizes are ours; the activations are ReLU,
or LeakyReLU(model.conv_leak) when that is set.

net="resnet" (the paper profile): the MMVAE+ authors' CUB networks, re-expressed from
srl-ethz/mmvaeplus src/models/encoder_decoder_blocks/resnet_cub_image.py (image) and
cnn_cub_text.py (caption). Image: residual networks (pre-activation leaky-ReLU 0.2 blocks, residual
branch scaled by 0.1) of widths 64..256 between 64x64 and 2x2, separate z and w encoders, decoder
output without nonlinearity. Caption: one linear word embedding (V -> 128, with bias) feeding a
five-conv z branch and a three-conv w branch, decoder with separate w and z transposed-conv
branches joined into a shared head, then a per-word linear map to the vocabulary; batch norm after
every conv but the heads and the decoder's last one (so train/eval mode matters here).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .nets import act  # ReLU for leak 0, else LeakyReLU(leak): model.conv_leak

EMB = 128  # word embedding width (MMVAE CUB sentence networks)


class Heads(nn.Module):
    """Linear heads of one encoder branch: features -> (loc, raw scale)."""

    def __init__(self, feat, dim):
        super().__init__()
        self.out = nn.Linear(feat, 2 * dim)

    def forward(self, h):
        return self.out(h).chunk(2, -1)


def image_body(leak=0.0, width=32):
    """3x64x64 -> 8*width*4*4 features (width: channels of the first layer, model.conv_width)."""
    c = width
    return nn.Sequential(
        nn.Conv2d(3, c, 4, 2, 1), act(leak),          # 64 -> 32
        nn.Conv2d(c, 2 * c, 4, 2, 1), act(leak),      # 32 -> 16
        nn.Conv2d(2 * c, 4 * c, 4, 2, 1), act(leak),  # 16 -> 8
        nn.Conv2d(4 * c, 8 * c, 4, 2, 1), act(leak),  # 8 -> 4
        nn.Flatten(),
    ), 8 * c * 4 * 4


class TextBody(nn.Module):
    """Word ids [N, 32] -> 16*width*4*4 features (MMVAE CUB sentence encoder layout at width 32,
    no batch norm)."""

    def __init__(self, vocab_size, leak=0.0, width=32):
        super().__init__()
        c = width
        self.embed = nn.Embedding(vocab_size, EMB)
        self.net = nn.Sequential(
            nn.Conv2d(1, c, 4, 2, 1), act(leak),                          # 32x128 -> 16x64
            nn.Conv2d(c, 2 * c, 4, 2, 1), act(leak),                      # -> 8x32
            nn.Conv2d(2 * c, 4 * c, 4, 2, 1), act(leak),                  # -> 4x16
            nn.Conv2d(4 * c, 8 * c, (1, 4), (1, 2), (0, 1)), act(leak),   # -> 4x8
            nn.Conv2d(8 * c, 16 * c, (1, 4), (1, 2), (0, 1)), act(leak),  # -> 4x4
            nn.Flatten(),
        )

    def forward(self, s):
        return self.net(self.embed(s).unsqueeze(1))


def _body(kind, vocab_size, leak=0.0, width=32):
    if kind == "image64":
        return image_body(leak, width)
    if kind == "text":
        if vocab_size <= 0:
            raise ValueError("the caption networks need model.vocab_size > 0 (the trainer sets it from the data)")
        return TextBody(vocab_size, leak, width), 16 * width * 4 * 4
    raise ValueError(f"no CUB network for modality {kind!r}")


class UniEncoder(nn.Module):
    """q(z|x_m) and q(w|x_m) of one modality: separate z and w branches of the same body (MMVAE+).
    make_body() -> (body network, its feature size), called once per branch."""

    def __init__(self, make_body, z_dim, w_dim=0):
        super().__init__()
        self.body_z, feat = make_body()
        self.head_z = Heads(feat, z_dim)
        self.body_w = make_body()[0] if w_dim else None
        self.head_w = Heads(feat, w_dim) if w_dim else None

    def forward(self, x):
        z_loc, z_raw = self.head_z(self.body_z(x))
        if self.body_w is None:
            return z_loc, z_raw, None, None
        w_loc, w_raw = self.head_w(self.body_w(x))
        return z_loc, z_raw, w_loc, w_raw


class ImageDecoder(nn.Module):
    """[N, in_dim] -> image means [N, 3, 64, 64] (the image body mirrored)."""

    def __init__(self, in_dim, leak=0.0, width=32):
        super().__init__()
        c = width
        self.net = nn.Sequential(
            nn.Linear(in_dim, 8 * c * 4 * 4), act(leak), nn.Unflatten(1, (8 * c, 4, 4)),
            nn.ConvTranspose2d(8 * c, 4 * c, 4, 2, 1), act(leak),  # 4 -> 8
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), act(leak),  # 8 -> 16
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), act(leak),      # 16 -> 32
            nn.ConvTranspose2d(c, 3, 4, 2, 1),                     # 32 -> 64
        )

    def forward(self, u):
        return self.net(u)


class TextDecoder(nn.Module):
    """[N, in_dim] -> word logits [N, 32, V] (the sentence encoder mirrored, then embedding -> vocabulary)."""

    def __init__(self, in_dim, vocab_size, leak=0.0, width=32):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError("the caption decoder needs model.vocab_size > 0 (the trainer sets it from the data)")
        c = width
        self.net = nn.Sequential(
            nn.Unflatten(1, (in_dim, 1, 1)),
            nn.ConvTranspose2d(in_dim, 16 * c, 4, 1, 0), act(leak),                   # -> 4x4
            nn.ConvTranspose2d(16 * c, 8 * c, (1, 4), (1, 2), (0, 1)), act(leak),     # -> 4x8
            nn.ConvTranspose2d(8 * c, 4 * c, (1, 4), (1, 2), (0, 1)), act(leak),      # -> 4x16
            nn.ConvTranspose2d(4 * c, 2 * c, 4, 2, 1), act(leak),                     # -> 8x32
            nn.ConvTranspose2d(2 * c, c, 4, 2, 1), act(leak),                         # -> 16x64
            nn.ConvTranspose2d(c, 1, 4, 2, 1),                                        # -> 32x128
        )  # no ReLU on this one-channel map: dead units there silence the whole caption
        self.to_vocab = nn.Linear(EMB, vocab_size)

    def forward(self, u):
        return self.to_vocab(self.net(u).squeeze(1))


# ---------------------------------------------------------------------------- net="resnet"
# The MMVAE+ authors' CUB networks (srl-ethz/mmvaeplus, src/models/encoder_decoder_blocks/
# resnet_cub_image.py and cnn_cub_text.py; the same in its mmvaeplus/models/ tree).

LEAK = 0.2  # leaky-ReLU slope of the residual networks
RES_WIDTHS = [min(64 * 2 ** i, 256) for i in range(6)]  # 64, 128, 256, 256, 256, 256 at 64, 32, ..., 2 px


class ResBlock(nn.Module):
    """x -> skip(x) + 0.1 * conv3x3(lrelu(conv3x3(lrelu(x)))), hidden width min(c_in, c_out);
    the skip is a bias-free 1x1 conv when the width changes, else the identity."""

    def __init__(self, c_in, c_out):
        super().__init__()
        hidden = min(c_in, c_out)
        self.conv1 = nn.Conv2d(c_in, hidden, 3, 1, 1)
        self.conv2 = nn.Conv2d(hidden, c_out, 3, 1, 1)
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        h = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, LEAK)), LEAK))
        return self.skip(x) + 0.1 * h


def resnet_image_body():
    """3x64x64 -> 256*2*2 features: 3x3 conv stem to 64 channels, a residual block, then five
    stages of (3x3 average pool stride 2 -> residual block widening as RES_WIDTHS)."""
    c = RES_WIDTHS
    layers = [nn.Conv2d(3, c[0], 3, 1, 1), ResBlock(c[0], c[0])]
    for a, b in zip(c, c[1:]):
        layers += [nn.AvgPool2d(3, 2, 1), ResBlock(a, b)]
    return nn.Sequential(*layers, nn.Flatten()), c[-1] * 2 * 2


class ResNetImageDecoder(nn.Module):
    """[N, in_dim] -> image means [N, 3, 64, 64]: linear to 256x2x2, five stages of (residual block
    narrowing as RES_WIDTHS reversed -> nearest 2x upsampling), a residual block, lrelu, 3x3 conv
    to RGB; no output nonlinearity."""

    def __init__(self, in_dim):
        super().__init__()
        c = RES_WIDTHS[::-1]
        layers = [nn.Linear(in_dim, c[0] * 2 * 2), nn.Unflatten(1, (c[0], 2, 2))]
        for a, b in zip(c, c[1:]):
            layers += [ResBlock(a, b), nn.Upsample(scale_factor=2)]
        layers += [ResBlock(c[-1], c[-1]), nn.LeakyReLU(LEAK), nn.Conv2d(c[-1], 3, 3, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, u):
        return self.net(u)


def _bn_stack(layer, specs):
    """layer(c_in, c_out, kernel, stride, padding) -> batch norm -> ReLU, for each spec."""
    mods = []
    for c_in, c_out, *geometry in specs:
        mods += [layer(c_in, c_out, *geometry), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*mods)


# (c_in, c_out, kernel, stride, padding) of the sentence convs: 1x32x128 -> 32x16x64 -> 64x8x32
# -> 128x4x16 -> 256x4x8 -> 512x4x4; the w branch stops after the third (128x4x16).
SENT_CONVS = [(1, 32, 4, 2, 1), (32, 64, 4, 2, 1), (64, 128, 4, 2, 1),
              (128, 256, (1, 4), (1, 2), (0, 1)), (256, 512, (1, 4), (1, 2), (0, 1))]


class LinearEmbedding(nn.Module):
    """The linear map (with bias) of one-hot words [..., V] -> [..., dim]; word ids [...] are read
    as their one-hot vectors without building them."""

    def __init__(self, vocab_size, dim):
        super().__init__()
        self.lin = nn.Linear(vocab_size, dim)

    def forward(self, s):
        if s.dtype.is_floating_point:
            return self.lin(s)
        return F.embedding(s, self.lin.weight.t()) + self.lin.bias


class SentenceEncoder(nn.Module):
    """q(z|s) and q(w|s) of a caption: one shared word embedding to [32, 128], read as a 1-channel
    image by a five-conv z branch (-> 512x4x4) and a three-conv w branch (-> 128x4x16), both with
    batch norm, and linear loc and raw-scale heads on the flattened features (the reference's z
    heads are 4x4 convs on 512x4x4, the same linear map)."""

    def __init__(self, z_dim, w_dim, vocab_size):
        super().__init__()
        self.embed = LinearEmbedding(vocab_size, EMB)
        self.body_z = nn.Sequential(_bn_stack(nn.Conv2d, SENT_CONVS), nn.Flatten())
        self.head_z = Heads(512 * 4 * 4, z_dim)
        self.body_w = nn.Sequential(_bn_stack(nn.Conv2d, SENT_CONVS[:3]), nn.Flatten()) if w_dim else None
        self.head_w = Heads(128 * 4 * 16, w_dim) if w_dim else None

    def forward(self, s):
        e = self.embed(s).unsqueeze(1)  # [N, 1, 32, 128]
        z_loc, z_raw = self.head_z(self.body_z(e))
        if self.body_w is None:
            return z_loc, z_raw, None, None
        w_loc, w_raw = self.head_w(self.body_w(e))
        return z_loc, z_raw, w_loc, w_raw


class SentenceDecoder(nn.Module):
    """u = [w, z] [N, w_dim + z_dim] -> word logits [N, 32, V]. w and z each go through their own
    transposed-conv branch (1x1 -> 4x4 -> 4x8 -> 4x16, z's with an extra 3x3 layer at 4x8) to
    128x4x16; the two maps, w's channels first, go through a shared head to 1x32x128 (batch norm
    throughout, a ReLU on the last map too), and a linear map takes each position's 128 values to
    the vocabulary. Without w (MMVAE), the head reads z's 128 channels alone."""

    def __init__(self, in_dim, w_dim, vocab_size):
        super().__init__()
        if vocab_size <= 0:
            raise ValueError("the caption decoder needs model.vocab_size > 0 (the trainer sets it from the data)")
        self.w_dim, z_dim = w_dim, in_dim - w_dim
        self.branch_w = _bn_stack(nn.ConvTranspose2d, [
            (w_dim, 512, 4, 1, 0), (512, 256, (1, 4), (1, 2), (0, 1)),
            (256, 128, (1, 4), (1, 2), (0, 1))]) if w_dim else None
        self.branch_z = _bn_stack(nn.ConvTranspose2d, [
            (z_dim, 512, 4, 1, 0), (512, 256, (1, 4), (1, 2), (0, 1)), (256, 256, 3, 1, 1),
            (256, 128, (1, 4), (1, 2), (0, 1))])
        self.head = nn.Sequential(
            _bn_stack(nn.ConvTranspose2d, [(256 if w_dim else 128, 128, 3, 1, 1),  # 4x16
                                           (128, 64, 4, 2, 1), (64, 32, 4, 2, 1)]),  # -> 8x32 -> 16x64
            nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.ReLU(),                        # -> 32x128
        )
        self.to_vocab = nn.Linear(EMB, vocab_size)

    def forward(self, u):
        w, z = u.split([self.w_dim, u.shape[-1] - self.w_dim], -1)
        h = self.branch_z(z[..., None, None])
        if self.branch_w is not None:
            h = torch.cat([self.branch_w(w[..., None, None]), h], 1)
        return self.to_vocab(self.head(h).squeeze(1))


NETS = ("conv", "resnet")  # resnet: the MMVAE+ networks, as cfg.net on PolyMNIST


def _check_net(net):
    if net not in NETS:
        raise ValueError(f"unknown CUB network set {net!r}: choose one of {NETS}")


def _conv_encoder(kind, z_dim, w_dim, vocab_size, leak, width):
    return UniEncoder(lambda: _body(kind, vocab_size, leak, width), z_dim, w_dim)


def _plus_encoder(kind, z_dim, w_dim, vocab_size):
    if kind == "image64":
        return UniEncoder(resnet_image_body, z_dim, w_dim)  # two separate residual networks, as the reference
    if kind == "text":
        if vocab_size <= 0:
            raise ValueError("the caption networks need model.vocab_size > 0 (the trainer sets it from the data)")
        return SentenceEncoder(z_dim, w_dim, vocab_size)
    raise ValueError(f"no CUB network for modality {kind!r}")


def _conv_decoder(kind, in_dim, vocab_size, leak, width):
    return ImageDecoder(in_dim, leak, width) if kind == "image64" else TextDecoder(in_dim, vocab_size, leak, width)


def _plus_decoder(kind, in_dim, w_dim, vocab_size):
    if kind == "image64":
        return ResNetImageDecoder(in_dim)
    if kind == "text":
        return SentenceDecoder(in_dim, w_dim, vocab_size)
    raise ValueError(f"no CUB network for modality {kind!r}")


class ModalityEncoders(nn.Module):
    """One encoder per modality (net="conv": UniEncoder of our bodies; "resnet": UniEncoder of the
    residual image body, or SentenceEncoder); forward(x tuple of M tensors) -> z_loc, z_raw, w_loc,
    w_raw each [N, M, dim] (w's None without w); forward(x_m, g=m) -> the same for modality m."""

    def __init__(self, kinds, z_dim, w_dim=0, vocab_size=0, net="conv", leak=0.0, width=32):
        super().__init__()
        _check_net(net)
        self.nets = nn.ModuleList(_conv_encoder(k, z_dim, w_dim, vocab_size, leak, width) if net == "conv"
                                  else _plus_encoder(k, z_dim, w_dim, vocab_size) for k in kinds)  # resnet: its own slopes

    def forward(self, x, g=None):
        if g is not None:
            return self.nets[g](x)
        outs = [net(x_m) for net, x_m in zip(self.nets, x)]
        return tuple(None if o[0] is None else torch.stack(o, 1) for o in zip(*outs))


class ModalityDecoders(nn.Module):
    """One decoder per modality; forward(u [N, M, in_dim]) -> tuple of M outputs [N, *event_m],
    decoder d reading u[:, d]; forward(u [N, in_dim], g=d) -> decoder d's output. u is [w, z]; the
    resnet caption decoder splits it, so it needs w_dim (0: u is z alone)."""

    def __init__(self, kinds, in_dim, vocab_size=0, net="conv", w_dim=0, leak=0.0, width=32):
        super().__init__()
        _check_net(net)
        self.nets = nn.ModuleList(_conv_decoder(k, in_dim, vocab_size, leak, width) if net == "conv" else _plus_decoder(
            k, in_dim, w_dim, vocab_size) for k in kinds)

    def forward(self, u, g=None):
        if g is not None:
            return self.nets[g](u)
        return tuple(net(u[:, d]) for d, net in enumerate(self.nets))
