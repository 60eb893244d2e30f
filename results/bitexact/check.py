"""What is bit-exact where, on the CPU: the same training under other kernel choices.

    python results/bitexact/check.py            (from the repo root; about 2 minutes)

Trains the cpu-profile MMVAE+ with the EBM prior (the conv nets, batch 64) for 20 steps on
the real PolyMNIST, in a fresh process per variant, and prints the sha256 of the parameters.
The variants change only what a different machine of the same kind would change: the vector
instructions oneDNN (convolutions) and MKL (matmuls) may use, and the thread count. Equal
hashes mean bit-identical training; the default variant runs twice to show that a run repeats
itself on one machine.
"""

import hashlib
import os
import subprocess
import sys

CHILD = r"""
import hashlib, torch
from mmebm.config import load_config
from mmebm.train import train, load_checkpoint
cfg = load_config("polymnist_mmvaeplus_ebm", "cpu", ["data.root=data/polymnist", "train.max_steps=20",
                  "train.eval_every=0", "train.device=cpu", "data.limit=2000"])
train(cfg, OUT, progress=False)
state = load_checkpoint(OUT + "/checkpoint.pt")["model"]
h = hashlib.sha256()
for k in sorted(state):
    h.update(state[k].numpy().tobytes())
print(h.hexdigest()[:16], torch.get_num_threads(), torch.backends.mkldnn.is_available())
"""

VARIANTS = {
    "default (2 threads)": {},
    "default again": {},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "oneDNN limited to AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "oneDNN AVX-512 without AMX": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"},
    "MKL limited to AVX2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "oneDNN and MKL limited to AVX2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
}

if __name__ == "__main__":
    for i, (name, env) in enumerate(VARIANTS.items()):
        out = f"/tmp/mmebm_bitexact_{i}"
        r = subprocess.run([sys.executable, "-c", f"OUT = {out!r}\n" + CHILD], env={**os.environ, **env},
                           capture_output=True, text=True)
        print(f"{name:<34} {r.stdout.strip() or r.stderr.strip()[-300:]}", flush=True)
