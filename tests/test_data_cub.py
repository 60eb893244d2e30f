"""CUB image-captions on the real captions, splits and (partial, classes 001-050) images of ../shared/data."""

import re
import tarfile
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from mmebm.data import (CUBCaptions, CUBImageCaptions, DataError, Vocab, caption_files, load_captions,
                        load_image_npz, one_hot, save_image_npz, split_ids, tokenize)
from mmebm.data.cub_text import EOS, EXC, PAD, read_lines

ALBATROSS = "001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111"  # first test image
LAYSAN = "002.Laysan_Albatross/Laysan_Albatross_0001_545"  # first trainval image
N_LINES = {"train": 88550, "test": 29330}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cub_cache")


@pytest.fixture(scope="module")
def caps(data_root, cache):
    """The default pair: derived trainval + derived test captions."""
    return load_captions(data_root, cache)


@pytest.fixture(scope="module")
def train_counts(data_root):
    return Counter(w for line in read_lines(caption_files(data_root)["train"]) for w in tokenize(line))


@pytest.fixture(scope="module")
def pairs(data_root, cache, caps):
    return {s: CUBImageCaptions.load(data_root, s, cache_dir=cache) for s in ("train", "test")}


def _mmvae_root(data_root, tmp_path, test_file="text_testclasses.txt"):
    """A data root in the official MMVAE layout (cub/text_*.txt), with the splits, no images."""
    src = data_root / "cub" / "mmvae_format"
    cub = tmp_path / "cub"
    cub.mkdir()
    (cub / "text_trainvalclasses.txt").symlink_to(src / "text_trainvalclasses.txt")
    (cub / "text_testclasses.txt").symlink_to(src / test_file)
    (cub / "splits").symlink_to(data_root / "cub" / "splits")
    return tmp_path


def _tiny_root(tmp_path, train_lines, test_lines, n_train=2, n_test=1):
    """A synthetic data root: caption files plus split lists of made-up ids."""
    cub = tmp_path / "cub"
    (cub / "mmvae_format").mkdir(parents=True)
    (cub / "splits").mkdir()
    (cub / "mmvae_format" / "text_trainvalclasses.txt").write_text("".join(s + "\n" for s in train_lines))
    (cub / "mmvae_format" / "text_testclasses.txt").write_text("".join(s + "\n" for s in test_lines))
    (cub / "splits" / "trainval_images.txt").write_text("".join(f"001.A/a_{i}\n" for i in range(n_train)))
    (cub / "splits" / "test_images.txt").write_text("".join(f"002.B/b_{i}\n" for i in range(n_test)))
    return tmp_path


# ---------------------------------------------------------------- tokenizer and vocabulary


@pytest.mark.parametrize("line,tokens", [  # expected: nltk 3.10.4 NLTKWordTokenizer (inside word_tokenize)
    ("this bird has a curved white bill, a white belly, and black primaries.",
     "this bird has a curved white bill , a white belly , and black primaries ."),
    ("this bird has a brown and white neck and a 'bump' shaped crown.",
     "this bird has a brown and white neck and a ' bump ' shaped crown ."),
    ("oh look, it's woody the red headed woodpecker!.", "oh look , it 's woody the red headed woodpecker ! ."),
    ('"a large bird with purple plumage and a blue, pointed beak.".',
     "`` a large bird with purple plumage and a blue , pointed beak. '' ."),
    ("this bird is colorful.a beautiful red and grey with a pointed bill.",
     "this bird is colorful.a beautiful red and grey with a pointed bill ."),
    ("colorful bird! the crown is bright blue, the breast and belly are a pinkish orange.",
     "colorful bird ! the crown is bright blue , the breast and belly are a pinkish orange ."),
    ("a bird (maybe a gull) that can't fly & has 3,000 feathers: wow...",
     "a bird ( maybe a gull ) that ca n't fly & has 3,000 feathers : wow ..."),
    ("the Brandt's cormorant is found only in marine environments.",
     "the Brandt 's cormorant is found only in marine environments ."),
])
def test_tokenizer_splits_as_nltk(line, tokens):
    assert tokenize(line) == tokens.split()


def test_tokenizer_matches_installed_nltk_on_all_train_lines(data_root):
    nltk_tok = pytest.importorskip("nltk.tokenize").NLTKWordTokenizer()
    lines = read_lines(caption_files(data_root)["train"])
    assert [tokenize(s) for s in lines] == [nltk_tok.tokenize(s) for s in lines]


def test_vocabulary_from_train_words_seen_more_than_3_times(caps, train_counts):
    v = caps.vocab
    assert len(v) == 1699  # MMVAE reports 1590 on its own (hand-corrected) trainval file; ours is derived from raw text
    assert v.words[:3] == ["<exc>", "<pad>", "<eos>"] and (EXC, PAD, EOS) == (0, 1, 2)
    assert v.words[3:8] == ["a", "white", "bird", "with", "black"]  # first-occurrence order of the first caption
    assert set(v.words[3:]) == {w for w, n in train_counts.items() if n > 3}
    assert train_counts["amd"] == 3 and "amd" not in v.index and train_counts["smoke"] == 4 and "smoke" in v.index


def test_vocabulary_ignores_test_words(tmp_path):
    root = _tiny_root(tmp_path, ["a bird ."] * 20, ["zebra zebra zebra zebra zebra ."] * 10)
    d = load_captions(root, tmp_path / "cache")
    assert d.vocab.words == ["<exc>", "<pad>", "<eos>", "a", "bird", "."]
    assert (d.ids["test"][:, :5] == EXC).all()


def test_sentence_counts(caps):
    for s, n in N_LINES.items():
        assert caps.ids[s].shape == (n, 32) and caps.ids[s].dtype == np.int64 and caps.lengths[s].shape == (n,)


def test_eos_then_padding(caps):
    for s in N_LINES:
        ids, length = caps.ids[s], caps.lengths[s]
        pos = np.arange(32)[None]
        assert (ids[np.arange(len(ids)), length - 1] == EOS).all()
        assert (ids[pos >= length[:, None]] == PAD).all()
        body = ids[pos < length[:, None] - 1]
        assert not np.isin(body, [PAD, EOS]).any()
        assert length.min() >= 2 and length.max() == 32


def test_long_captions_are_truncated_to_31_words_plus_eos(data_root, caps):
    lines = read_lines(caption_files(data_root)["train"])
    long = [i for i in range(200) if len(tokenize(lines[i])) > 31]
    assert long and caps.meta["truncated"]["train"] == 1863
    for i in long:
        words = tokenize(lines[i])[:31]
        assert caps.ids["train"][i, 31] == EOS and caps.lengths["train"][i] == 32
        assert caps.vocab.tokens(caps.ids["train"][i]) == [w if w in caps.vocab.index else "<exc>" for w in words]
    ids, n = caps.vocab.encode(["a"] * 40)
    assert n == 32 and (ids[:31] == caps.vocab.index["a"]).all() and ids[31] == EOS


def test_unknown_words_map_to_exc(data_root, caps):
    v = caps.vocab
    ids = v.encode_text("a zzyzx bird with amd wings.")
    assert ids.tolist()[:8] == [v.index["a"], EXC, v.index["bird"], v.index["with"], EXC, v.index["wings"],
                                v.index["."], EOS]
    lines = read_lines(caption_files(data_root)["train"])
    i = next(i for i, s in enumerate(lines) if " amd " in s)  # "amd" occurs 3 times in train: not in the vocabulary
    words = tokenize(lines[i])
    assert caps.ids["train"][i, words.index("amd")] == EXC
    assert (caps.ids["train"] == EXC).any(1).sum() > 1000 and (caps.ids["test"] == EXC).any(1).sum() > 1000


def test_decode_stops_at_eos_and_drops_pad(caps):
    v = caps.vocab
    ids = torch.tensor([[v.index["a"], PAD, v.index["bird"], EOS, v.index["red"], PAD]])
    assert v.decode(ids) == ["a bird"] and v.decode(ids[0]) == "a bird"
    quoted = v.encode_text('"a bird with a "dome" on it\'s crown".')
    assert v.decode(quoted) == '"a bird with a "dome" on it \'s crown" .'  # quotes glued back: re-tokenizes the same
    assert np.array_equal(v.encode_text(v.decode(quoted)), quoted)


def test_round_trip_ids_text_ids(caps):
    for s in N_LINES:
        ids = caps.ids[s][::10]
        ok = ~(ids == EXC).any(1) & (caps.lengths[s][::10] < 32)  # in-vocabulary, not truncated
        assert ok.sum() > 0.8 * len(ids)
        back = np.stack([caps.vocab.encode_text(t) for t in caps.vocab.decode(ids[ok])])
        assert np.array_equal(back, ids[ok])


def test_one_hot(caps):
    ids = torch.as_tensor(caps.ids["test"][:5])
    oh = one_hot(ids, len(caps.vocab))
    assert oh.shape == (5, 32, 1699) and oh.dtype == torch.float32
    assert torch.equal(oh.argmax(-1), ids) and (oh.sum(-1) == 1).all()


# ---------------------------------------------------------------- pairing with images


def test_coverage_of_the_staged_images(pairs):
    tr, te = pairs["train"], pairs["test"]
    assert tr.coverage == {"images": 1906, "of": 8855, "classes": 33, "of_classes": 150, "unmatched": 0}
    assert te.coverage == {"images": 983, "of": 2933, "classes": 17, "of_classes": 50, "unmatched": 0}
    assert (len(tr), len(te)) == (19060, 9830) and tr.images.shape == (1906, 3, 64, 64)
    assert set(tr.classes.tolist()) <= set(range(1, 51))


def test_batches(pairs):
    d = pairs["test"]
    assert [len(b[1]) for b in d.batches(4000, generator=torch.Generator(), drop_last=True)] == [4000, 4000]
    x, s = next(d.batches(32, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (32, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert s.shape == (32, 32) and s.dtype == torch.int64
    again = next(d.batches(32, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(again[1], s)  # same seed, same order
    assert [len(b[1]) for b in d.batches(4000, shuffle=False)] == [4000, 4000, 1830]


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_caption_sits_with_image_line_div_10(data_root, pairs, caps, split):
    d, ids = pairs[split], split_ids(data_root, split)
    staged = load_image_npz(data_root / "cub" / "images64" / f"{'trainval' if split == 'train' else 'test'}.npz")
    row = {n: i for i, n in enumerate(staged.names)}
    img_names = [d.names[i] for i in d.image_index.tolist()]
    assert img_names == [ids[j // 10] for j in d.lines]  # caption line j goes with image j // 10 of the split
    assert np.array_equal(d.captions.numpy(), caps.ids[split][d.lines])
    for i in (0, 123, len(d) - 1):
        assert np.array_equal(d.images[d.image_index[i]].numpy(), staged.images[row[img_names[i]]])
    assert np.array_equal(np.bincount(d.image_index.numpy()), np.full(len(d.names), 10))


def _letters(s):
    return re.sub("[^a-z]", "", s.lower())


def test_caption_files_line_up_with_the_raw_text_c10(data_root, caps):
    """Independent check of the order: derived line 10k+j starts like raw caption j of image k."""
    want = {"train": [0, 4000, 8854], "test": [0, 2932]}
    names = {f"text_c10/{split_ids(data_root, s)[k]}.txt": (s, k) for s, ks in want.items() for k in ks}
    raw = {}
    with tarfile.open(data_root / "cub" / "text_c10.tar.gz") as tar:
        for m in tar:
            if m.name in names:
                raw[names[m.name]] = tar.extractfile(m).read().decode().splitlines()
    assert len(raw) == len(names)
    files = caption_files(data_root)
    for (s, k), raw_lines in raw.items():
        lines = read_lines(files[s])[10 * k : 10 * k + 10]
        for line, r in zip(lines, raw_lines):
            assert _letters(r).startswith(_letters(line)) and len(_letters(line)) > 10


def test_original_test_file_pairs_with_the_albatross(data_root, cache, tmp_path):
    """MMVAE's own test file (test_text='original'): its first 10 lines describe ALBATROSS, the first test image."""
    d = CUBImageCaptions.load(data_root, "test", cache_dir=cache, test_text="original")
    assert d.meta["sources"]["test"]["file"].endswith("mmvae_format/text_testclasses.txt")
    first = read_lines(data_root / "cub" / "mmvae_format" / "text_testclasses.txt")[:10]
    mine = (d.image_index == d.names.index(ALBATROSS)).nonzero().flatten()
    assert d.lines[mine.numpy()].tolist() == list(range(10))
    assert d.vocab.decode(d.captions[mine]) == [d.vocab.decode(d.vocab.encode_text(s)) for s in first]
    staged = load_image_npz(data_root / "cub" / "images64" / "test.npz")
    x = d[mine[0].item()][0]
    assert torch.equal((x * 255).round().to(torch.uint8), torch.as_tensor(staged.images[staged.names.index(ALBATROSS)]))


def test_captions_only(data_root, cache, caps, tmp_path):
    root = _mmvae_root(data_root, tmp_path)  # no images anywhere
    t = CUBCaptions.load(root, "train", cache_dir=cache)
    assert len(t) == 88550 and t.image_ids[0] == LAYSAN and t.image_ids[-1] == split_ids(root, "train")[-1]
    assert t.image_ids[19] == t.image_ids[10] != t.image_ids[9]
    b = next(t.batches(16, generator=torch.Generator().manual_seed(1)))
    assert b.shape == (16, 32) and b.dtype == torch.int64
    with pytest.raises(DataError, match="Caltech"):
        CUBImageCaptions.load(root, "train", cache_dir=cache)
    small = CUBCaptions.load(data_root, "test", cache_dir=cache, limit=100)
    assert len(small) == 100 and len({n.split("/")[0] for n in small.image_ids}) == 50


@pytest.mark.parametrize("layout", ["mmvae", "caltech"])
def test_partial_jpeg_folder_is_paired_by_name(data_root, cache, tmp_path, layout):
    root = _mmvae_root(data_root, tmp_path)
    staged = load_image_npz(data_root / "cub" / "images64" / "test.npz")
    folder = root / "cub" / ("test" if layout == "mmvae" else "CUB_200_2011/images")
    pick = [0, 40, 500, 982]  # a few test images; each written as a 128x128 JPEG
    for i in pick:
        path = folder / f"{staged.names[i]}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(staged.images[i].transpose(1, 2, 0)).resize((128, 128), Image.BICUBIC).save(path, quality=95)
    d = CUBImageCaptions.load(root, "test", cache_dir=cache)
    assert d.coverage["images"] == 4 and d.coverage["of"] == 2933 and len(d) == 40
    assert d.names == [staged.names[i] for i in pick]
    ids = split_ids(root, "test")
    assert [d.names[i] for i in d.image_index.tolist()] == [ids[j // 10] for j in d.lines]
    err = (d.images.float() - torch.from_numpy(staged.images[pick]).float()).abs().mean()
    assert err < 6  # JPEG + resampling noise only: the right images
    again = CUBImageCaptions.load(root, "test", cache_dir=cache)
    assert again.meta["images"].endswith(".npz") and torch.equal(again.images, d.images)  # converted once


# ---------------------------------------------------------------- cache, formats, errors


def test_cache_reuse_and_rebuild(tmp_path):
    root = _tiny_root(tmp_path, ["a red bird ."] * 20, ["a bird ."] * 10)
    cache = tmp_path / "cache"
    first = load_captions(root, cache)
    assert first.meta["cached"] is False
    second = load_captions(root, cache)
    assert second.meta["cached"] is True and second.vocab.words == first.vocab.words
    assert np.array_equal(second.ids["train"], first.ids["train"])
    (root / "cub" / "mmvae_format" / "text_trainvalclasses.txt").write_text("a blue bird .\n" * 20)
    changed = load_captions(root, cache)
    assert changed.meta["cached"] is False and "blue" in changed.vocab.index and "red" not in changed.vocab.index
    entry = cache / f"captions_{changed.meta['key']}"
    (entry / "train_ids.npy").unlink()  # a damaged cache is rebuilt, not trusted
    assert load_captions(root, cache).meta["cached"] is False
    assert load_captions(root, cache, rebuild=True).meta["cached"] is False
    assert len(list(cache.glob("captions_*"))) == 2


def test_image_npz_round_trip(tmp_path, data_root):
    staged = load_image_npz(data_root / "cub" / "images64" / "test.npz")  # stored [N, 64, 64, 3]
    assert staged.images.shape == (983, 3, 64, 64) and staged.names[0] == ALBATROSS
    save_image_npz(tmp_path / "x.npz", staged.images[:5], staged.names[:5])
    back = load_image_npz(tmp_path / "x.npz")
    assert np.array_equal(back.images, staged.images[:5]) and back.names == staged.names[:5]
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 32, 32, 3), np.uint8), names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="64x64"):
        load_image_npz(tmp_path / "bad.npz")


def test_cli_reports_vocabulary_and_coverage(data_root, cache, caps, capsys):
    from mmebm.data.__main__ import main

    assert main(["cub", "--data-root", str(data_root), "--cache-dir", str(cache), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "vocabulary: 1699 words" in out and "88550 captions" in out and "29330 captions" in out
    assert "1906 of 8855 images (21.5 %), 33 of 150 classes" in out and "983 of 2933 images" in out


def test_errors(tmp_path, data_root, cache):
    with pytest.raises(DataError, match="text_trainvalclasses.txt"):
        caption_files(tmp_path)
    root = _tiny_root(tmp_path, ["a bird ."] * 19, ["a bird ."] * 10)  # 19 lines for 2 images
    with pytest.raises(DataError, match="needs 10 x 2 = 20"):
        CUBCaptions.load(root, "train", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="derived"):
        caption_files(root, test_text="derived")
    with pytest.raises(ValueError):
        CUBCaptions.load(root, "val", cache_dir=tmp_path / "c")
    with pytest.raises(DataError, match="other split"):  # trainval images offered for the test split
        CUBImageCaptions.load(data_root, "test", cache_dir=cache,
                              images=data_root / "cub" / "images64" / "trainval.npz")
