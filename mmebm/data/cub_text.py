"""CUB captions as MMVAE/MMVAE+ feed them to the text modality (their `CUBSentences`).

Recipe (SPEC.md section 5): tokenize each caption; keep its first MAX_LEN - 1 tokens, append
`<eos>`, pad with `<pad>` to MAX_LEN = 32. The vocabulary holds `<exc>`=0, `<pad>`=1, `<eos>`=2,
then every word occurring more than MIN_OCC = 3 times in the *train* file, in order of first
occurrence; any other word maps to `<exc>`. Caption line i belongs to image i // 10.

Tokenizer. MMVAE runs `nltk.sent_tokenize` over the whole file, then `nltk.word_tokenize` on each
sentence. Both need NLTK's downloaded punkt model, which we cannot assume, so `tokenize` below
re-implements the word-level part of `word_tokenize` (NLTK's improved Treebank rules: punctuation,
quotes, brackets, clitics such as "it's" -> "it", "'s") with plain regexes, and every *line* is
taken as one sentence. Differences from NLTK:
  * no punkt: a line that holds two sentences ("colorful bird! the crown is blue.") stays one
    caption, where punkt would make two and shift every later caption off its image. The
    MMVAE-format files hold one sentence per line by construction (MANIFEST 3c), so line
    splitting is what keeps caption i with image i // 10.
  * punkt would also split the period off an inner sentence end ("bird. the" -> "bird", ".");
    we split only a line's final period, as `word_tokenize` does within one sentence.
  * checked against nltk 3.10.4 `NLTKWordTokenizer` (the tokenizer inside `word_tokenize`): the
    same tokens on all 147,210 lines of the three caption files on hand.
"""

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .mnist import DataError

EXC, PAD, EOS = 0, 1, 2
SPECIALS = ("<exc>", "<pad>", "<eos>")
MAX_LEN = 32
MIN_OCC = 3  # a word enters the vocabulary if it occurs MORE than 3 times
SPLITS = ("train", "test")
TEXT_FILES = {"train": "text_trainvalclasses.txt", "test": "text_testclasses.txt"}
DERIVED_TEST = "text_testclasses.derived.txt"
TOKENIZER_VERSION = 1  # bump when `tokenize` changes, so caches rebuild

# ---------------------------------------------------------------- tokenizer

_sub = re.compile
_OPENING = [  # opening quotes become `` (Treebank convention)
    (_sub(r"([«“‘„]|`+)"), r" \1 "),
    (_sub(r'^"'), r"``"),
    (_sub(r"(``)"), r" \1 "),
    (_sub(r'([ (\[{<])("|\'{2})'), r"\1 `` "),
    (_sub(r"(?i)(?<!\w)(')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),  # 'quoted -> ' quoted; 's stays
]
_PUNCT = [  # the final-period rule comes twice, as in NLTK; only a line's last period is split
    (_sub(r"""([^.])(\.)([\]\)}>"'»”’ ]*)\s*$"""), r"\1 \2 \3 "),
    (_sub(r"([:,])([^\d])"), r" \1 \2"),  # "3,000" and "10:30" stay whole
    (_sub(r"([:,])$"), r" \1 "),
    (_sub(r"\.{2,}"), r" \g<0> "),
    (_sub(r"[;@#$%&]"), r" \g<0> "),
    (_sub(r"[\u2012-\u2015]"), r" \g<0> "),  # figure, en and em dashes
    (_sub(r"""([^.])(\.)([\]\)}>"']*)\s*$"""), r"\1 \2\3 "),
    (_sub(r"[?!]"), r" \g<0> "),
    (_sub(r"([^'])' "), r"\1 ' "),
    (_sub(r"[*]"), r" \g<0> "),
    (_sub(r"[\]\[(){}<>]"), r" \g<0> "),
    (_sub(r"--"), r" -- "),
]
_CLOSING = [  # closing quotes become '', clitics split off their word
    (_sub(r"([»”’])"), r" \1 "),
    (_sub(r"''"), r" '' "),
    (_sub(r'"'), r" '' "),
    (_sub(r"\s+"), " "),  # so that the clitic rules below see single spaces
    (_sub(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (_sub(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_SPLIT_WORDS = [  # Treebank splits these fused words in two
    _sub(r"(?i)\b(can)(not)\b"), _sub(r"(?i)\b(d)('ye)\b"), _sub(r"(?i)\b(gim)(me)\b"),
    _sub(r"(?i)\b(gon)(na)\b"), _sub(r"(?i)\b(got)(ta)\b"), _sub(r"(?i)\b(lem)(me)\b"),
    _sub(r"(?i)\b(more)('n)\b"), _sub(r"(?i)\b(wan)(na)(?=\s)"),
    _sub(r"(?i) ('t)(is)\b"), _sub(r"(?i) ('t)(was)\b"),
]


def tokenize(line):
    """Words of one caption, as `nltk.word_tokenize` splits a single sentence (see module doc)."""
    for rx, rep in _OPENING:
        line = rx.sub(rep, line)
    for rx, rep in _PUNCT:
        line = rx.sub(rep, line)
    line = f" {line} "
    for rx, rep in _CLOSING:
        line = rx.sub(rep, line)
    for rx in _SPLIT_WORDS:
        line = rx.sub(r" \1 \2 ", line)
    return line.split()


# ---------------------------------------------------------------- vocabulary, encoding


@dataclass
class Vocab:
    """Index <-> word. `words[i]` is the word of id i; ids 0, 1, 2 are `<exc>`, `<pad>`, `<eos>`."""

    words: list
    index: dict = field(init=False, repr=False)

    def __post_init__(self):
        if tuple(self.words[:3]) != SPECIALS:
            raise DataError(f"vocabulary must start with {SPECIALS}, got {self.words[:3]}. Rebuild the cache.")
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    @classmethod
    def build(cls, token_lists, min_occ=MIN_OCC):
        """Words seen more than `min_occ` times, in order of first occurrence (as MMVAE's OrderedCounter)."""
        counts = Counter(w for toks in token_lists for w in toks)  # dicts keep insertion order
        return cls(list(SPECIALS) + [w for w, n in counts.items() if n > min_occ and w not in SPECIALS])

    def encode(self, tokens, max_len=MAX_LEN):
        """Ids int64 [max_len] and length (tokens kept + `<eos>`): words[:max_len-1] + <eos> + <pad>..."""
        kept = tokens[: max_len - 1]
        ids = np.full(max_len, PAD, dtype=np.int64)
        ids[: len(kept)] = [self.index.get(w, EXC) for w in kept]
        ids[len(kept)] = EOS
        return ids, len(kept) + 1

    def encode_text(self, text, max_len=MAX_LEN):
        return self.encode(tokenize(text), max_len)[0]

    def tokens(self, ids):
        """Words up to (not including) the first `<eos>`, `<pad>` dropped."""
        out = []
        for i in torch.as_tensor(ids).tolist():
            if i == EOS:
                break
            if i != PAD:
                out.append(self.words[i])
        return out

    def decode(self, ids):
        """Text of one id sequence [L], or a list of texts for [N, L], such that `tokenize(decode(ids))`
        gives the same words back. Words are joined by spaces, except quotes: the tokenizer writes
        " as `` / '', and a spaced '' would read as an opening quote again, so both go back to a "
        glued to their word."""
        ids = torch.as_tensor(ids)
        if ids.ndim == 2:
            return [self.decode(row) for row in ids]
        text, glue = "", False
        for w in self.tokens(ids):
            if w == "''" and text and not glue:
                text += '"'
            else:
                text += ("" if glue or not text else " ") + ('"' if w == "``" else w)
                glue = w == "``"
        return text


def one_hot(ids, vocab_size):
    """Ids int [..., L] -> float32 one-hot [..., L, V]: the text modality as MMVAE's decoder sees it."""
    return torch.nn.functional.one_hot(torch.as_tensor(ids, dtype=torch.int64), vocab_size).float()


# ---------------------------------------------------------------- caption files


def cub_dir(root):
    """The CUB folder: `root/cub` if there is one (a data root), else `root` itself."""
    root = Path(root)
    return root / "cub" if (root / "cub").is_dir() else root


def caption_files(root, test_text="auto"):
    """Paths of the train and test caption files.

    Looks in `cub/mmvae_format/` (the staged layout of ../shared/data) and then in `cub/`
    (the official MMVAE download). test_text: 'original' is `text_testclasses.txt`;
    'derived' is `text_testclasses.derived.txt` (same cleaning rule as the derived trainval file);
    'auto' (default) takes the derived test file when it lies beside the train file, so both
    splits go through the same preprocessing, and otherwise `text_testclasses.txt` (in the
    MMVAE download both files are the MMVAE authors' originals, again a consistent pair).
    """
    if test_text not in ("auto", "derived", "original"):
        raise ValueError(f"test_text must be 'auto', 'derived' or 'original', got {test_text!r}")
    base = cub_dir(root)
    for folder in (base / "mmvae_format", base):
        train = folder / TEXT_FILES["train"]
        if train.is_file():
            break
    else:
        raise DataError(
            f"no {TEXT_FILES['train']} in {base / 'mmvae_format'} or {base}. Point the data root at the folder "
            "holding cub/ (MMEBM_DATA or --data-root); the MMVAE-format caption files come with the MMVAE "
            "CUB download (cub/text_trainvalclasses.txt, cub/text_testclasses.txt).")
    derived, original = folder / DERIVED_TEST, folder / TEXT_FILES["test"]
    test = derived if test_text == "derived" or (test_text == "auto" and derived.is_file()) else original
    if not test.is_file():
        raise DataError(f"test caption file {test} not found. Use test_text='original' or 'derived' to pick "
                        "the file that is there, or add it next to the train file.")
    return {"train": train, "test": test}


def read_lines(path):
    """Caption lines of one file: one caption per line, a final newline optional, CRLF accepted."""
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


# ---------------------------------------------------------------- processing with a cache


@dataclass
class CaptionData:
    """Processed captions of both splits: ids int64 [N, MAX_LEN], lengths [N] (with `<eos>`)."""

    vocab: Vocab
    ids: dict  # split -> int64 [N, max_len]
    lengths: dict  # split -> int64 [N]
    meta: dict  # sources (file, sha256), max_len, min_occ, counts


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def process_captions(files, max_len=MAX_LEN, min_occ=MIN_OCC):
    """Tokenize both files, build the vocabulary from 'train', encode every caption."""
    tokens = {s: [tokenize(line) for line in read_lines(files[s])] for s in SPLITS}
    vocab = Vocab.build(tokens["train"], min_occ)
    ids, lengths = {}, {}
    for s in SPLITS:
        enc = [vocab.encode(t, max_len) for t in tokens[s]]
        ids[s] = np.stack([e[0] for e in enc]) if enc else np.zeros((0, max_len), np.int64)
        lengths[s] = np.array([e[1] for e in enc], dtype=np.int64)
    meta = {"max_len": max_len, "min_occ": min_occ, "tokenizer_version": TOKENIZER_VERSION,
            "vocab_size": len(vocab), "n_captions": {s: len(ids[s]) for s in SPLITS},
            "truncated": {s: int(sum(len(t) > max_len - 1 for t in tokens[s])) for s in SPLITS}}
    return CaptionData(vocab, ids, lengths, meta)


def load_captions(root, cache_dir="data/cub", test_text="auto", max_len=MAX_LEN, min_occ=MIN_OCC, rebuild=False):
    """Processed captions, from `cache_dir` when a cache of the same sources and settings is there.

    The cache key hashes the two files' contents (sha256), max_len, min_occ and the tokenizer
    version, so editing a caption file or switching test_text makes a new cache entry
    `cache_dir/captions_<key>/` holding vocab.json, meta.json and {split}_ids.npy / _len.npy.
    """
    files = caption_files(root, test_text)
    sources = {s: {"file": str(files[s]), "sha256": _sha256(files[s])} for s in SPLITS}
    key_src = json.dumps([sources[s]["sha256"] for s in SPLITS] + [max_len, min_occ, TOKENIZER_VERSION])
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    out = Path(cache_dir) / f"captions_{key}"
    if (out / "meta.json").is_file() and not rebuild:
        try:
            meta = json.loads((out / "meta.json").read_text())
            vocab = Vocab(json.loads((out / "vocab.json").read_text()))
            ids = {s: np.load(out / f"{s}_ids.npy") for s in SPLITS}
            lengths = {s: np.load(out / f"{s}_len.npy") for s in SPLITS}
            meta["cached"] = True
            return CaptionData(vocab, ids, lengths, meta)
        except (OSError, ValueError, DataError):
            pass  # unreadable cache: rebuild it below
    data = process_captions(files, max_len, min_occ)
    data.meta.update(sources=sources, key=key)
    # Write to a private folder, then rename: concurrent loaders never see a half-written cache.
    tmp = Path(cache_dir) / f".captions_{key}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "vocab.json").write_text(json.dumps(data.vocab.words, ensure_ascii=False) + "\n")
    for s in SPLITS:
        np.save(tmp / f"{s}_ids.npy", data.ids[s].astype(np.int64))
        np.save(tmp / f"{s}_len.npy", data.lengths[s])
    (tmp / "meta.json").write_text(json.dumps(data.meta, indent=2) + "\n")  # last: marks the cache complete
    shutil.rmtree(out, ignore_errors=True)
    try:
        tmp.rename(out)
    except OSError:  # another process won the race with identical content
        shutil.rmtree(tmp, ignore_errors=True)
    data.meta["cached"] = False
    return data
