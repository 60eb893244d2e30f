"""Which image summary makes colour coherence (mmebm/colours.py) a yardstick: on the real CUB test
pairs, an image against its own caption and against a caption of another image, for centre crops
and numbers of dominant colours. The chosen pair (crop, top) separates own from other best.

    MMEBM_DATA=../shared/data python results/cub_colours/probe.py > results/cub_colours/probe.txt
"""

from mmebm.colours import caption_colours, colour_coherence, image_colours
from mmebm.data import CUBImageCaptions, data_root

pairs = CUBImageCaptions.load(data_root(), "test", cache_dir="data/cub")
named_by_caption = caption_colours(pairs.captions, pairs.vocab)
print(f"{len(pairs)} test captions of {len(pairs.images)} images; "
      f"{sum(map(bool, named_by_caption)) / len(pairs):.3f} of the captions name a colour")
print("caption -> its real image: image colours against the caption's colour words (chance: expected over the captions of all other images; intervals clustered by image)")
print("| centre crop | top colours | own | other image | gain (95 % interval) |\n|---|---|---|---|---|")
images = pairs.images.float() / 255
for crop in (64, 48, 32, 16, 8):
    for top in (1, 2, 3):
        shown = image_colours(images, crop, top)
        shown = [shown[i] for i in pairs.image_index.tolist()]
        r = colour_coherence(shown, named_by_caption, pairs.image_index)
        print(f"| {crop} | {top} | {r['share'].value:.3f} | {r['chance'].value:.3f} | "
              f"{r['gain'].value:.3f} ({r['gain'].lo:.3f}, {r['gain'].hi:.3f}) |")

# image -> caption's ceiling: one real caption of each image against the colours of its other nine
first = {}
for i, m in enumerate(pairs.image_index.tolist()):
    first.setdefault(m, i)
rest = [set() for _ in range(len(pairs.images))]
for i, m in enumerate(pairs.image_index.tolist()):
    if first[m] != i:
        rest[m] |= named_by_caption[i]
held_out = [named_by_caption[first[m]] for m in range(len(pairs.images))]
r = colour_coherence(held_out, rest, list(range(len(pairs.images))))
print(f"\nimage -> caption, real: an image's first caption against the colours of its other nine: own "
      f"{r['share'].value:.3f}, other image {r['chance'].value:.3f}, gain {r['gain'].value:.3f} "
      f"({r['gain'].lo:.3f}, {r['gain'].hi:.3f})")
