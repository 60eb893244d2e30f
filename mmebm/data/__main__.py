"""python -m mmebm.data {polymnist,mnist,cub} ...: build PolyMNIST, download MNIST, or process CUB captions and images."""

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

    c = sub.add_parser("cub", help="tokenize the CUB captions, resize the CUB images to 64x64, report coverage")
    c.add_argument("--data-root", help=f"raw-data root holding cub/ (default ${DATA_ROOT_ENV}, else data/raw)")
    c.add_argument("--cache-dir", default="data/cub", help="processed captions and images (default data/cub)")
    c.add_argument("--test-text", default="auto", choices=["auto", "derived", "original"],
                   help="test caption file (see mmebm.data.cub_text.caption_files)")
    c.add_argument("--images", help="npz or folder of <class>/<image>.jpg to use instead of searching cub/")
    c.add_argument("--rebuild", action="store_true", help="re-tokenize even if the cache is there")
    c.add_argument("--quiet", action="store_true", help="no progress bar")

    args = parser.parse_args(argv)
    try:
        if args.command == "cub":
            return _cub(args)
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


def _cub(args):
    from .cub import _check_lines
    from .cub_images import describe, find_images, pair_by_name, split_ids
    from .cub_text import load_captions

    root = data_root(args.data_root)
    caps = load_captions(root, args.cache_dir, args.test_text, rebuild=args.rebuild)
    print(f"vocabulary: {len(caps.vocab)} words; cache {args.cache_dir}/captions_{caps.meta['key']}")
    for split in ("train", "test"):
        m = caps.meta
        print(f"{split}: {m['n_captions'][split]} captions ({m['truncated'][split]} truncated) "
              f"from {m['sources'][split]['file']}")
        ids = split_ids(root, split)
        if ids is not None:
            _check_lines(m["n_captions"][split], ids, split, m["sources"][split]["file"])
        found = find_images(root, split, args.cache_dir, args.images, progress=not args.quiet)
        if found is None:
            print(f"  no images for {split}: captions only (see mmebm.data.cub_images.GET_IMAGES)")
        elif ids is None:
            print(f"  {len(found.names)} images from {found.source} (no cub/splits: folder order is caption order)")
        else:
            print(f"  images: {describe(pair_by_name(ids, found.names)[1])} from {found.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
