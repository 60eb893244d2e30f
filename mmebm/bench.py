"""Benchmark a full training step of the four models, batched vs per-modality loop.

    python -m mmebm.bench                         # all four models, batch 128, CPU
    python -m mmebm.bench --models mmvaeplus_ebm --steps 5 --device cuda --bf16 --compile
    python -m mmebm.bench --net conv --impl batched loop grouped
    python -m mmebm.bench --net conv --models mmvaeplus mopoe mvtcae mmjsd --impl loop

Implementations: `loop` is the per-modality loop (config batched=False); `batched` the
batched networks (batched=True), which run grouped kernels on CUDA and copy by copy on
CPU (see mmebm.nets; issue #3: on CPU the grouped kernels were slower than the loop);
`grouped` is batched with the grouped kernels forced, e.g. to time them on CPU.

Models: the four presets, and MoPoE, MVTCAE and mmJSD (MMVAE's networks and z with Gaussian
posteriors and prior, and their objectives; objectives.py). A step is: VAE forward + backward + optimizer step, and for the EBM prior the Langevin
sampling of the negatives + EBM forward + backward + optimizer step. FLOPs (matmuls and
convolutions, forward and backward, Langevin included; optimizer updates not) come from
torch's FlopCounterMode on one step at a small batch, scaled per sample. On CPU the
benchmark first stops glibc malloc from returning large blocks to the OS (see
mmebm.train.keep_freed_memory; --default-malloc to skip): without it the batched path pays page faults.

Variants (--variants, one model at a time against the same baseline, interleaved in one
process; issue #26 item 2): `eager` is the eager Langevin chain in fp32, the baseline; `graph`
the chain as one captured CUDA graph (the default on CUDA); the others add one knob to `graph`:
`bf16` (autocast of the VAE), `tf32` (TF32 matmuls; cuDNN's convolutions use TF32 by default),
`nchw` (grouped convs without channels_last), `batch2x` (twice the batch; samples/s stays
comparable), `compile` (torch.compile of the VAE loss).

    python -m mmebm.bench --device cuda --models mmvaeplus_ebm --variants eager graph bf16 tf32 nchw batch2x
"""

import argparse
import contextlib
import os
import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from .config import PRESETS, preset
from .models import build_model, make_optimizers
from .nets import CopyNet
from .train import keep_freed_memory


BASELINES = ("mopoe", "mvtcae", "mmjsd")  # objectives on MMVAE's one shared z
MODELS = (*PRESETS, *BASELINES)


def model_config(name, **kw):
    """The ModelConfig of a preset, or of a baseline objective on MMVAE's networks."""
    if name in BASELINES:
        return preset("mmvae", prior="gaussian", posterior="normal", objective=name, **kw)
    return preset(name, **kw)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model, opt_vae, opt_ebm, device, bf16=False, compile=False, tf32=False):
    """A training step that returns (seconds in total, seconds in Langevin sampling)."""
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
    loss_fn = torch.compile(model.loss) if compile else model.loss

    def step(x):
        torch.backends.cuda.matmul.allow_tf32 = tf32  # global: set for each variant's step
        _sync(device)
        t0 = time.perf_counter()
        opt_vae.zero_grad(set_to_none=True)
        with autocast():
            loss, stats = loss_fn(x)
        loss.backward()
        opt_vae.step()
        t_langevin = 0.0
        if opt_ebm is not None:
            _sync(device)
            t1 = time.perf_counter()
            z_neg = model.prior.sample(stats["z"].shape[0])
            _sync(device)
            t_langevin = time.perf_counter() - t1
            opt_ebm.zero_grad(set_to_none=True)
            ebm_loss, _ = model.ebm_loss(stats["z"].float(), z_neg)
            ebm_loss.backward()
            opt_ebm.step()
        _sync(device)
        return time.perf_counter() - t0, t_langevin

    return step


def count_flops(name, net, batch=4, **cfg):
    """Matmul + conv FLOPs of one training step, per sample. FlopCounterMode's module hooks do
    not mix with the autograd.grad of Langevin dynamics, so the chain is counted as its
    n_steps x (f_alpha forward + input gradient, about 2 forwards) on the negatives.
    Counted on the loop implementation (same arithmetic): FlopCounterMode overcounts the
    backward of grouped convolutions (torch 2.14)."""
    torch.manual_seed(0)
    model = build_model(model_config(name, net=net, batched=False, **cfg))
    x = torch.rand(batch, model.cfg.n_modalities, 3, 28, 28)
    with FlopCounterMode(display=False) as fc:
        loss, stats = model.loss(x)
        loss.backward()
        if model.has_ebm:
            z_neg = torch.randn_like(stats["z"])
            model.ebm_loss(stats["z"], z_neg)[0].backward()
    flops = fc.get_total_flops()
    if model.has_ebm:
        with FlopCounterMode(display=False) as fc:
            model.prior.f_alpha(z_neg)
        flops += model.prior.n_steps * 2 * fc.get_total_flops()
    return flops / batch


# name -> changes to the `graph` setting (see the module docstring)
VARIANTS = {"eager": {"graph": False}, "graph": {}, "bf16": {"bf16": True}, "tf32": {"tf32": True},
            "nchw": {"channels_last": False}, "batch2x": {"batch_scale": 2}, "compile": {"compile": True}}


def build_step(name, net, impl, batch, device, bf16=False, compile=False, tf32=False, graph=True,
               channels_last=True, batch_scale=1):
    """(step function, input batch) of one setting, from the same seed."""
    torch.manual_seed(0)
    model = build_model(model_config(name, net=net, batched=impl != "loop", langevin_graph=graph,
                                     channels_last=channels_last)).to(device)
    if impl == "grouped":
        for mod in model.modules():
            if isinstance(mod, CopyNet):
                mod.grouped_kernels = True
    x = torch.rand(batch * batch_scale, model.cfg.n_modalities, 3, 28, 28, device=device)
    return make_step(model, *make_optimizers(model), device, bf16, compile, tf32), x


def time_steps(settings, steps):
    """{label: (step, x)} -> {label: samples/s, step time and Langevin share (medians)}, the
    settings' steps interleaved so that a shared machine's changing load hits them alike."""
    times, tf32 = {label: [] for label in settings}, torch.backends.cuda.matmul.allow_tf32
    for i in range(steps + 2):
        for label, (step, x) in settings.items():
            t = step(x)
            if i > 1:  # two warm-up steps: allocator, oneDNN primitives, graph capture, compilation
                times[label].append(t)
    out = {}
    for label, (_, x) in settings.items():
        step_s = statistics.median(t for t, _ in times[label])
        out[label] = {"sps": len(x) / step_s, "step_s": step_s,
                      "langevin": statistics.median(l / t for t, l in times[label])}
    torch.backends.cuda.matmul.allow_tf32 = tf32  # as it was before the variants set it
    return out


def bench(name, net, impls, batch, steps, device, bf16=False, compile=False):
    """Median step time of each implementation."""
    return time_steps({impl: build_step(name, net, impl, batch, device, bf16, compile) for impl in impls}, steps)


def bench_variants(name, net, variants, batch, steps, device):
    """Median step time of each variant (VARIANTS) of the batched implementation."""
    return time_steps({v: build_step(name, net, "batched", batch, device, **VARIANTS[v]) for v in variants}, steps)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    ap.add_argument("--net", default="resnet", choices=["resnet", "conv"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--impl", nargs="+", default=["batched", "loop"], choices=["batched", "loop", "grouped"],
                    help="grouped: batched with grouped kernels forced (the CPU default runs copies one by one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast of the VAE forward")
    ap.add_argument("--compile", action="store_true", help="torch.compile the VAE loss")
    ap.add_argument("--default-malloc", action="store_true", help="leave glibc malloc's mmap threshold as it is")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                    help="time these variants of the batched implementation instead of --impl (one table per model)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    allocator = "glibc default"
    if args.device == "cpu" and not args.default_malloc and keep_freed_memory():
        allocator = "glibc, freed memory kept (mmap off)"
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, net {args.net}, "
          f"batch {args.batch}, {args.steps} timed steps (median), bf16 {args.bf16}, compile {args.compile}, "
          f"malloc: {allocator}, load average {os.getloadavg()[0]:.2f}")
    if device.type == "cuda":
        print(f"GPU {torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, "
              f"cuDNN TF32 {torch.backends.cudnn.allow_tf32}")
    if args.variants:
        return print_variants(args, device)
    cols = "".join(f"{impl + ' samp/s':>16}" for impl in args.impl)
    print(f"{'model':<15}{cols}{'batched/loop':>14}{'langevin %':>12}{'GFLOP/samp':>12}{'GFLOP/s':>10}")
    for name in args.models:
        gflop = count_flops(name, args.net) / 1e9
        res = bench(name, args.net, args.impl, args.batch, args.steps, device, args.bf16, args.compile)
        first = res[args.impl[0]]
        ratio = f"{res['batched']['sps'] / res['loop']['sps']:.2f}" if {"batched", "loop"} <= set(res) else "-"
        cols = "".join(f"{r['sps']:>16.2f}" for r in res.values())
        print(f"{name:<15}{cols}{ratio:>14}{100 * first['langevin']:>11.1f}%{gflop:>12.2f}"
              f"{gflop * first['sps']:>10.1f}", flush=True)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB; "
          f"langevin % and GFLOP/s are for the {args.impl[0]} implementation")


def print_variants(args, device):
    for name in args.models:
        res = bench_variants(name, args.net, args.variants, args.batch, args.steps, device)
        base = res[args.variants[0]]["sps"]
        print(f"{name} ({args.net}, batch {args.batch}):")
        print(f"  {'variant':<10}{'samp/s':>10}{'step ms':>10}{'langevin %':>12}{'x ' + args.variants[0]:>12}")
        for v, r in res.items():
            print(f"  {v:<10}{r['sps']:>10.1f}{1e3 * r['step_s']:>10.2f}{100 * r['langevin']:>11.1f}%"
                  f"{r['sps'] / base:>12.2f}", flush=True)
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
