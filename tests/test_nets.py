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
