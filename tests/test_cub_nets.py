"""CUB networks (mmebm/cub_nets.py): the paper profile (net="resnet", the MMVAE+ authors' CUB
networks) counted by hand against the reference's layer lists, output shapes, and the conv
networks (net="conv", the default) left as they were."""

import pytest
import torch
import torch.nn.functional as F

from mmebm.cub_nets import LinearEmbedding, ModalityDecoders, ModalityEncoders

# MMVAE+ CUB run (srl-ethz/mmvaeplus src/commands/run_CUB_experiment.sh): z 48, w 16. The caption
# constants of src/models/encoder_decoder_blocks/cnn_cub_text.py: vocabSize 1590, embeddingDim 128,
# maxSentLen 32, fBase 32. The image networks (resnet_cub_image.py): nf 64, nf_max 256, s0 2.
Z, W, V, EMB, L = 48, 16, 1590, 128, 32
KINDS = ("image64", "text")


def _n(module):
    return sum(p.numel() for p in module.parameters())


def _conv(cin, cout, k=3, bias=True):  # k an int (k x k) or a (kh, kw) pair
    kh, kw = (k, k) if isinstance(k, int) else k
    return cin * cout * kh * kw + (cout if bias else 0)


def _linear(fin, fout):
    return fin * fout + fout


def _bn(c):  # weight and bias (the running statistics are buffers, not parameters)
    return 2 * c


def _resblock(cin, cout):  # ResnetBlock(fin, fout): fhidden = min(fin, fout), 1x1 bias-free shortcut if fin != fout
    h = min(cin, cout)
    return _conv(cin, h) + _conv(h, cout) + (_conv(cin, cout, 1, bias=False) if cin != cout else 0)


# --- hand counts from the reference's layer lists ----------------------------------------------
# resnet_cub_image.py, EncoderImg: per latent (w and z alike) conv_img 3->64 (3x3), ResnetBlock(64, 64),
# then for i in 0..4 (nlayers = log2(64 / 2) = 5): AvgPool, ResnetBlock(min(64*2^i, 256), min(64*2^(i+1), 256))
# = (64,128), (128,256), (256,256) x3; fc_mu and fc_lv: Linear(256*2*2, dim) each.
IMG_BRANCH = _conv(3, 64) + _resblock(64, 64) + _resblock(64, 128) + _resblock(128, 256) + 3 * _resblock(256, 256)
IMG_ENC = 2 * IMG_BRANCH + 2 * _linear(256 * 2 * 2, Z) + 2 * _linear(256 * 2 * 2, W)
# DecoderImg(w + z): fc Linear(ndim, 256*2*2); for i in 0..4 ResnetBlock(min(64*2^(5-i), 256), min(64*2^(4-i), 256))
# = (256,256) x3, (256,128), (128,64), each followed by Upsample; ResnetBlock(64, 64); conv_img 64->3 (3x3).
IMG_DEC = (_linear(W + Z, 256 * 2 * 2) + 3 * _resblock(256, 256) + _resblock(256, 128) + _resblock(128, 64)
           + _resblock(64, 64) + _conv(64, 3))
# cnn_cub_text.py, Enc: embedding Linear(1590, 128); enc_w: Conv(1,32,4) BN, Conv(32,64,4) BN, Conv(64,128,4) BN;
# c1_w, c2_w: Linear(32*16*16, w); enc_z: those three plus Conv(128,256,(1,4)) BN, Conv(256,512,(1,4)) BN;
# c1_z, c2_z: Conv(512, z, 4).
TXT_THREE = _conv(1, 32, 4) + _bn(32) + _conv(32, 64, 4) + _bn(64) + _conv(64, 128, 4) + _bn(128)
TXT_ENC = (_linear(V, EMB)
           + TXT_THREE + 2 * _linear(32 * 16 * 16, W)
           + TXT_THREE + _conv(128, 256, (1, 4)) + _bn(256) + _conv(256, 512, (1, 4)) + _bn(512) + 2 * _conv(512, Z, 4))
# Dec: dec_w: ConvT(w,512,4) BN, ConvT(512,256,(1,4)) BN, ConvT(256,128,(1,4)) BN;
# dec_z: ConvT(z,512,4) BN, ConvT(512,256,(1,4)) BN, ConvT(256,256,3) BN, ConvT(256,128,(1,4)) BN;
# dec_h: ConvT(256,128,3) BN, ConvT(128,64,4) BN, ConvT(64,32,4) BN, ConvT(32,1,4); toVocabSize Linear(128, 1590).
TXT_DEC = (_conv(W, 512, 4) + _bn(512) + _conv(512, 256, (1, 4)) + _bn(256) + _conv(256, 128, (1, 4)) + _bn(128)
           + _conv(Z, 512, 4) + _bn(512) + _conv(512, 256, (1, 4)) + _bn(256) + _conv(256, 256) + _bn(256)
           + _conv(256, 128, (1, 4)) + _bn(128)
           + _conv(256, 128) + _bn(128) + _conv(128, 64, 4) + _bn(64) + _conv(64, 32, 4) + _bn(32) + _conv(32, 1, 4)
           + _linear(EMB, V))


@pytest.fixture(scope="module")
def plus():
    torch.manual_seed(0)
    return (ModalityEncoders(KINDS, Z, W, V, net="resnet"),
            ModalityDecoders(KINDS, W + Z, V, net="resnet", w_dim=W))


def test_mmvaeplus_parameter_counts(plus):
    enc, dec = plus
    assert (IMG_ENC, IMG_DEC, TXT_ENC, TXT_DEC) == (8_552_448, 4_276_931, 2_240_064, 3_096_023)
    assert [_n(m) for m in enc.nets] == [IMG_ENC, TXT_ENC]
    assert [_n(m) for m in dec.nets] == [IMG_DEC, TXT_DEC]


def test_mmvaeplus_shapes(plus):
    enc, dec = plus
    B = 2
    x = (torch.rand(B, 3, 64, 64), torch.randint(0, V, (B, L)))
    with torch.no_grad():
        z_loc, z_raw, w_loc, w_raw = enc(x)
        assert z_loc.shape == z_raw.shape == (B, 2, Z) and w_loc.shape == w_raw.shape == (B, 2, W)
        img, txt = dec(torch.randn(B, 2, W + Z))
        assert img.shape == (B, 3, 64, 64) and txt.shape == (B, L, V)
        for g, x_m in enumerate(x):  # one modality, and one sample in eval mode (batch norm)
            enc.eval()
            assert [o.shape for o in enc(x_m[:1], g=g)] == [(1, Z), (1, Z), (1, W), (1, W)]
            enc.train()
        dec.eval()
        assert dec(torch.randn(1, W + Z), g=1).shape == (1, L, V)
        dec.train()


def test_mmvaeplus_text_decoder_reads_w_first(plus):
    """u = [w, z] (MMVAE+ order): the w branch gets the first w_dim entries."""
    _, dec = plus
    seen = []
    hook = dec.nets[1].branch_w.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    u = torch.randn(2, W + Z)
    with torch.no_grad():
        dec(u, g=1)
    hook.remove()
    assert torch.equal(seen[0], u[:, :W, None, None])


def test_linear_embedding_of_ids_is_the_one_hot_map():
    emb = LinearEmbedding(11, 5)
    s = torch.randint(0, 11, (3, 7))
    assert torch.allclose(emb(s), emb(F.one_hot(s, 11).float()), atol=1e-6)


def test_mmvaeplus_without_w():
    """MMVAE (no w): z branches only; the caption decoder's head reads z's 128 channels."""
    enc = ModalityEncoders(KINDS, 6, 0, 9, net="resnet")
    dec = ModalityDecoders(KINDS, 6, 9, net="resnet")
    x = (torch.rand(2, 3, 64, 64), torch.randint(0, 9, (2, L)))
    with torch.no_grad():
        z_loc, z_raw, w_loc, w_raw = enc(x)
        img, txt = dec(torch.randn(2, 2, 6))
    assert z_loc.shape == (2, 2, 6) and w_loc is None and w_raw is None
    assert img.shape == (2, 3, 64, 64) and txt.shape == (2, L, 9)


def test_unknown_net_is_refused():
    with pytest.raises(ValueError, match="unknown CUB network"):
        ModalityEncoders(KINDS, 4, 2, 9, net="resnet50")
    with pytest.raises(ValueError, match="unknown CUB network"):
        ModalityDecoders(KINDS, 6, 9, net="mmvaeplus")


def _conv_counts(z, w, v, c=32):
    """Parameters of the conv encoders and decoders at first-layer width c, by hand from their layers."""
    img_body = _conv(3, c, 4) + _conv(c, 2 * c, 4) + _conv(2 * c, 4 * c, 4) + _conv(4 * c, 8 * c, 4)
    txt_body = v * EMB + _conv(1, c, 4) + _conv(c, 2 * c, 4) + _conv(2 * c, 4 * c, 4) + _conv(4 * c, 8 * c, (1, 4)) \
        + _conv(8 * c, 16 * c, (1, 4))
    heads = _linear(8 * c * 16, 2 * z) + _linear(8 * c * 16, 2 * w)
    enc = [2 * img_body + heads, 2 * txt_body + _linear(16 * c * 16, 2 * z) + _linear(16 * c * 16, 2 * w)]
    img_dec = (_linear(w + z, 8 * c * 16) + _conv(8 * c, 4 * c, 4) + _conv(4 * c, 2 * c, 4) + _conv(2 * c, c, 4)
               + _conv(c, 3, 4))
    txt_dec = (_conv(w + z, 16 * c, 4) + _conv(16 * c, 8 * c, (1, 4)) + _conv(8 * c, 4 * c, (1, 4))
               + _conv(4 * c, 2 * c, 4) + _conv(2 * c, c, 4) + _conv(c, 1, 4) + _linear(EMB, v))
    return enc, [img_dec, txt_dec]


def _check_conv_shapes(enc, dec, z, w, v):
    """The conv encoders give [N, M, dim] posteriors; the decoders give 64x64 images and [L, V] word logits."""
    x = (torch.rand(2, 3, 64, 64), torch.randint(0, v, (2, L)))
    with torch.no_grad():
        outs = enc(x)
        img, txt = dec(torch.randn(2, 2, w + z))
    assert [o.shape for o in outs] == [(2, 2, z), (2, 2, z), (2, 2, w), (2, 2, w)]
    assert img.shape == (2, 3, 64, 64) and txt.shape == (2, L, v)


def test_conv_networks_unchanged():
    """net defaults to "conv"; the conv networks keep their layers (hand count: 3->32->...->256 for
    the image, 1->32->...->512 for the caption) and their parameter names (checkpoints saved before
    net existed still load)."""
    z, w, v = 6, 3, 40
    enc, dec = ModalityEncoders(KINDS, z, w, v), ModalityDecoders(KINDS, w + z, v)
    assert ([_n(m) for m in enc.nets], [_n(m) for m in dec.nets]) == _conv_counts(z, w, v, 32)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in [*enc.modules(), *dec.modules()])

    explicit_enc = ModalityEncoders(KINDS, z, w, v, net="conv")
    explicit_dec = ModalityDecoders(KINDS, w + z, v, net="conv")
    assert list(enc.state_dict()) == list(explicit_enc.state_dict())
    assert list(dec.state_dict()) == list(explicit_dec.state_dict())
    keys = set(enc.state_dict()) | set(dec.state_dict())
    assert {"nets.0.body_z.0.weight", "nets.0.head_w.out.weight", "nets.1.body_z.embed.weight",
            "nets.1.body_w.net.8.weight", "nets.0.net.0.weight", "nets.1.net.11.weight",
            "nets.1.to_vocab.weight"} <= keys

    _check_conv_shapes(enc, dec, z, w, v)


@pytest.mark.parametrize("width", [8, 16])
def test_conv_width_scales_every_layer(width):
    """model.conv_width (32 by default) sets the first layer's channels, and every later layer
    keeps its multiple of it (the hand count); shapes in and out do not change."""
    z, w, v = 6, 3, 40
    enc = ModalityEncoders(KINDS, z, w, v, width=width)
    dec = ModalityDecoders(KINDS, w + z, v, width=width)
    assert ([_n(m) for m in enc.nets], [_n(m) for m in dec.nets]) == _conv_counts(z, w, v, width)
    assert enc.nets[0].body_z[0].out_channels == width and dec.nets[1].net[-1].in_channels == width
    _check_conv_shapes(enc, dec, z, w, v)


def test_conv_leak_switches_every_conv_activation_and_keeps_the_parameters():
    """leak 0 (the default): ReLU throughout; leak 0.2: every activation of
    both conv networks is LeakyReLU(0.2), so a negative pre-activation still passes a gradient. The
    parameter names do not change, so one checkpoint loads into either."""
    z, w, v = 6, 3, 40
    nets = {leak: (ModalityEncoders(KINDS, z, w, v, leak=leak), ModalityDecoders(KINDS, w + z, v, leak=leak))
            for leak in (0.0, 0.2)}
    for leak, (enc, dec) in nets.items():
        acts = [m for m in [*enc.modules(), *dec.modules()] if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
        assert len(acts) == 2 * (4 + 5) + (4 + 5)  # two branches per encoder; image and caption decoders
        assert all(isinstance(m, torch.nn.LeakyReLU) and m.negative_slope == leak if leak else type(m) is torch.nn.ReLU
                   for m in acts)
        assert list(enc.state_dict()) == list(nets[0.0][0].state_dict())
        assert list(dec.state_dict()) == list(nets[0.0][1].state_dict())
    act = nets[0.2][0].nets[0].body_z[1]
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    act(x).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([0.2, 1.0]))
