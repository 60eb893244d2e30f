"""python -m mmebm.data {polymnist,mnist} ...: build PolyMNIST, or download MNIST."""

import argparse
import sys
import time

from . import DATA_ROOT_ENV, DataError, build_polymnist, data_root, download_mnist


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m mmebm.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("polymnist", help="build PolyMNIST from MNIST and the background images")
    p.add_argument("--data-root", help=f"raw-data root (default ${DATA_ROOT_ENV}, else data/raw)")
    p.add_argument("--mnist", help="folder with the MNIST IDX files (default DATA_ROOT/mnist)")
    p.add_argument("--backgrounds", help="folder with the background JPEGs (default DATA_ROOT/polymnist/backgrounds)")
    p.add_argument("--out", default="data/polymnist", help="output folder (default data/polymnist)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--png", action="store_true", help="also write the official {train,test}/m{0..4}/{i}.{digit}.png layout")
    p.add_argument("--limit", type=int, help="use only the first LIMIT MNIST images of each split (quick checks)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    d = sub.add_parser("mnist", help="download MNIST through torchvision (needs internet)")
    d.add_argument("--download", action="store_true", required=True)
    d.add_argument("--out", default="data/raw/mnist")

    args = parser.parse_args(argv)
    try:
        if args.command == "mnist":
            print(f"MNIST IDX files in {download_mnist(args.out)}")
            return 0
        root = data_root(args.data_root)
        t0 = time.perf_counter()
        out = build_polymnist(args.mnist or root / "mnist", args.backgrounds or root / "polymnist" / "backgrounds",
                              args.out, seed=args.seed, png=args.png, limit=args.limit, progress=not args.quiet)
        print(f"PolyMNIST written to {out} in {time.perf_counter() - t0:.1f} s")
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
