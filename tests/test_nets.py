import pytest
import torch
import torch.nn.functional as F

from mmebm.nets import Decoder, Encoder, EnergyMLP, GConv2d, GLinear


def _conv(cin, cout, k=3, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def _resblock(cin, cout):
    h = min(cin, cout)
    return _conv(cin, h) + _conv(h, cout) + (_conv(cin, cout, 1, bias=False) if cin != cout else 0)


def test_mmvaeplus_polymnist_parameter_count():
    # SPEC section 3, per modality: two encoder branches and one decoder; "about 22 M" for 5
    branch = _conv(3, 64) + _resblock(64, 64) + _resblock(64, 128) + _resblock(128, 256) + 256 * 49 * 64 + 64
    dec = 64 * 256 * 49 + 256 * 49 + _resblock(256, 128) + _resblock(128, 64) + _resblock(64, 64) + _conv(64, 3)
    enc_n = sum(p.numel() for p in Encoder(5, 32, 32).parameters())
    dec_n = sum(p.numel() for p in Decoder(5, 64).parameters())
    assert enc_n == 5 * 2 * branch and dec_n == 5 * dec
    assert 21e6 < enc_n + dec_n < 23e6


@pytest.mark.parametrize("net", ["resnet", "conv"])
def test_shapes(net):
    x = torch.rand(3, 5, 3, 28, 28)
    z_loc, z_raw, w_loc, w_raw = Encoder(5, 32, 16, net)(x)
    assert z_loc.shape == z_raw.shape == (3, 5, 32) and w_loc.shape == w_raw.shape == (3, 5, 16)
    assert Encoder(5, 32, 0, net)(x)[2] is None
    assert Decoder(5, 48, net)(torch.randn(7, 5, 48)).shape == (7, 5, 3, 28, 28)
    assert Decoder(5, 48, net)(torch.randn(7, 48), g=2).shape == (7, 3, 28, 28)


@pytest.mark.parametrize("leak", [0.0, 0.2])
def test_conv_leak_keeps_units_that_are_negative_on_every_input_learning(leak):
    """The conv encoder's last hidden layer with every unit pushed below zero: under ReLU
    (leak 0) no gradient reaches it and it stays dead; under LeakyReLU it still learns. The
    parameters are the same either way, so weights trained with one load into the other."""
    torch.manual_seed(0)
    enc = Encoder(5, 8, 4, "conv", leak=leak)
    last = enc.body[-2]  # the GLinear before the last activation
    with torch.no_grad():
        last.bias.fill_(-1e3)
    z_loc, _, w_loc, _ = enc(torch.rand(4, 5, 3, 28, 28))
    (z_loc.sum() + w_loc.sum()).backward()
    grad = last.weight.grad.abs().sum()
    assert (grad > 0) == (leak > 0)
    assert enc.state_dict().keys() == Encoder(5, 8, 4, "conv").state_dict().keys()
    assert Decoder(5, 12, "conv", leak=leak).state_dict().keys() == Decoder(5, 12, "conv").state_dict().keys()


@pytest.mark.parametrize("transpose", [False, True])
def test_gconv_copies_are_independent_convs(transpose):
    torch.manual_seed(0)
    G, cin, cout = 3, 4, 6
    conv = GConv2d(G, cin, cout, 4 if transpose else 3, stride=2, padding=1, transpose=transpose)
    x = torch.randn(2, G * cin, 7, 7)
    y = conv(x)
    for g in range(G):
        xg = x[:, g * cin:(g + 1) * cin]
        if transpose:
            w = conv.weight[g * cin:(g + 1) * cin]
            ref = F.conv_transpose2d(xg, w, conv.bias[g * cout:(g + 1) * cout], 2, 1)
        else:
            w = conv.weight[g * cout:(g + 1) * cout]
            ref = F.conv2d(xg, w, conv.bias[g * cout:(g + 1) * cout], 2, 1)
        torch.testing.assert_close(y[:, g * cout:(g + 1) * cout], ref)
        torch.testing.assert_close(conv(xg, g), ref)


def test_glinear_copies_are_independent_linears():
    torch.manual_seed(0)
    lin = GLinear(4, 5, 3)
    x = torch.randn(6, 4, 5)
    y = lin(x)
    for g in range(4):
        ref = x[:, g] @ lin.weight[g] + lin.bias[g]
        torch.testing.assert_close(y[:, g], ref)
        torch.testing.assert_close(lin(x[:, g], g), ref)


@pytest.mark.parametrize("act", ["leakyrelu", "gelu"])
def test_energy_mlp(act):
    f = EnergyMLP(32, 200, act)
    assert [tuple(p.shape) for p in f.parameters()] == [(200, 32), (200,), (200, 200), (200,), (1, 200), (1,)]
    assert f(torch.randn(9, 32)).shape == (9,)


def test_grouped_kernels_default_is_cuda_only():
    enc = Encoder(2, 4, 0, "conv")
    assert enc.grouped_kernels is None and not enc.use_grouped_kernels(torch.zeros(1))
    enc.grouped_kernels = True
    assert enc.use_grouped_kernels(torch.zeros(1))


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("net,w_dim", [("resnet", 4), ("conv", 4), ("conv", 0)])
def test_batched_paths_equal_loop(net, w_dim, grouped):
    # the models' batched == loop tests run on CPU, where forward(x) defaults to copy by copy:
    # here both batched paths, grouped kernels forced on CPU included, against forward(x_m, g=m)
    torch.manual_seed(0)
    M, N = 3, 5
    enc, dec = Encoder(M, 6, w_dim, net), Decoder(M, 6 + w_dim, net)
    for mod in (enc, dec):
        mod.grouped_kernels, mod.chunk = grouped, 2  # chunk 2: N=5 runs as chunks of 2, 2, 1
    x, u = torch.rand(N, M, 3, 28, 28), torch.randn(N, M, 6 + w_dim)

    def loss(enc_out, dec_out):
        return sum((o * (i + 1)).square().sum() for i, o in enumerate(enc_out) if o is not None) + dec_out.square().sum()

    batched = enc(x), dec(u)
    outs = [enc(x[:, m], g=m) for m in range(M)]
    loop = [None if o[0] is None else torch.stack(o, 1) for o in zip(*outs)], torch.stack([dec(u[:, m], g=m) for m in range(M)], 1)
    for a, b in zip(batched[0], loop[0]):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert batched[1].shape == (N, M, 3, 28, 28)
    torch.testing.assert_close(batched[1], loop[1], rtol=1e-4, atol=1e-5)
    params = list(enc.parameters()) + list(dec.parameters())
    gb = torch.autograd.grad(loss(*batched), params)
    gl = torch.autograd.grad(loss(*loop), params)
    for a, b in zip(gb, gl):
        # float32 sums in another order, and a leaky_relu input within rounding of 0 takes the
        # other slope: up to ~2e-3 of the largest entry seen (grouped); a wrong slice gives O(1)
        assert (a - b).abs().max() <= 1e-2 * b.abs().max()


def test_conv_upsample_mopoe_is_the_reference_decoder():
    """model.conv_upsample=mopoe: the last two transposed convs as thomassutter/MoPoE's DecoderImg
    (kernel 3, stride 2, padding 1, output_padding 1), each copy the torch layer it stands for."""
    torch.manual_seed(0)
    dec = Decoder(2, 12, "conv", upsample="mopoe")
    ups = [m for m in dec.net if isinstance(m, GConv2d) and m.transpose]
    assert [(m.weight.shape[-1], m.output_padding) for m in ups] == [(3, 0), (3, 1), (3, 1)]
    assert dec(torch.randn(3, 2, 12)).shape == (3, 2, 3, 28, 28)
    conv = ups[1]  # copy 1 of 7 -> 14 against nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1)
    ref = torch.nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1)
    with torch.no_grad():
        ref.weight.copy_(conv.weight[64:128])
        ref.bias.copy_(conv.bias[32:64])
    x = torch.randn(3, 64, 7, 7)
    torch.testing.assert_close(conv(x, 1), ref(x))
    assert dec.state_dict().keys() == Decoder(2, 12, "conv").state_dict().keys()  # the k4 weights' names
    with pytest.raises(ValueError, match="conv_upsample 'k5'"):
        Decoder(2, 12, "conv", upsample="k5")
