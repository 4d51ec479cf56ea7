"""IMDB movie reviews, like keras.datasets.imdb: `load_data()` and `get_word_index()`.

    (x_train, y_train), (x_test, y_test) = hubel.datasets.imdb.load_data(num_words=10000)

Sources, searched in this order under `path=` or HUBEL_DATA_DIR (and its imdb/ folder):
Keras's own `imdb.npz`; the raw Large Movie Review Dataset (`aclImdb/`, `aclImdb_v1.tar.gz` or
`aclImdb_v1_labeled.tar.xz`), tokenised the way Keras's file was made (lower case, Keras's
Tokenizer filters, split on spaces) and mapped to ranks with the official word index
(`imdb_word_index.json`). Raw reviews are tokenised once and cached. Built from raw reviews,
the examples come in another order than imdb.npz's (the same seeded shuffle follows).
"""

from __future__ import annotations

import io
import json
import pickle
import re
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hubel.data.datasets import Arrays, DatasetInfo, _register, _Search, cached_arrays, safe_unpickle
from hubel.data.text import text_to_word_sequence
from hubel.errors import ConfigError, DataError

__all__ = ["INFO", "get_word_index", "load_data", "load_texts"]

_MIRROR = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_NPZ_SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
_WORD_INDEX_MD5 = "bfafd718b763782e994055a2d397834f"
_RAW_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_ARCHIVES = ("aclImdb_v1.tar.gz", "aclImdb_v1_labeled.tar.xz", "aclImdb.tar.gz", "aclImdb.tar.xz")
_REVIEW = re.compile(r"(?:^|/)(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")

INFO = DatasetInfo(
    name="imdb",
    title="IMDB movie reviews",
    class_names=("negative", "positive"),
    image_shape=(),  # one example is a list of word ids
    label_shape=(),
    train_size=25_000,
    test_size=25_000,
    source="Maas et al., ACL 2011 (Large Movie Review Dataset v1.0); Keras's word index",
    how_to_get=(
        f"curl -L --create-dirs -o $HUBEL_DATA_DIR/imdb.npz {_MIRROR}imdb.npz, or put the raw reviews "
        f"(aclImdb/ or {_RAW_URL}) with imdb_word_index.json ({_MIRROR}imdb_word_index.json) in $HUBEL_DATA_DIR/imdb"
    ),
    kind="text",
)


def _folders(search: _Search, path: str | Path | None) -> list[Path]:
    root = Path(path).expanduser() if path is not None else search.root
    if path is not None and not root.exists():
        raise DataError(
            f"IMDB: {root} does not exist. Pass path= an imdb.npz, an aclImdb folder or tarball, or their folder."
        )
    return [root] if root.is_file() or root.name == "aclImdb" else [root, root / "imdb"]


def _find_word_index(search: _Search, folders: list[Path]) -> Path | None:
    for folder in folders:
        base = folder.parent if folder.is_file() or folder.name == "aclImdb" else folder
        found = search.first(base / "imdb_word_index.json")
        if found:
            return found
    return search.download(_MIRROR + "imdb_word_index.json", "imdb_word_index.json", _WORD_INDEX_MD5, "md5")


def get_word_index(path: str | Path | None = None) -> dict[str, int]:
    """Keras's IMDB word index: word -> frequency rank (1 is "the"); ids in load_data are rank + index_from.

    `path` is the JSON file itself or a folder holding it; by default HUBEL_DATA_DIR is searched.
    """
    search = _Search(INFO)
    given = Path(path).expanduser() if path is not None else None
    if given is not None and given.suffix == ".json":
        if not given.exists():
            raise DataError(
                f"IMDB word index: {given} does not exist. Pass the imdb_word_index.json file or its folder."
            )
        found: Path | None = given
    else:
        found = _find_word_index(search, _folders(search, given))
    if found is None:
        raise search.failure()
    return _read_word_index(found)


def _read_word_index(path: Path) -> dict[str, int]:
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable word index ({error}). Delete it and get it again.") from None
    if not isinstance(index, dict) or not all(isinstance(rank, int) for rank in index.values()):
        raise DataError(f"{path}: expected a JSON object of word -> rank. Delete it and get it again.")
    return index


# ----- raw reviews ----------------------------------------------------------------------------


def _raw_reviews(source: Path) -> Iterator[tuple[str, str, int, bytes]]:
    """(split, 'pos'|'neg', id, bytes) of every labelled review in an aclImdb folder or tarball."""
    if source.is_dir():
        for split in ("train", "test"):
            for label in ("pos", "neg"):
                for file in (source / split / label).glob("*.txt"):
                    match = _REVIEW.search(file.as_posix())
                    if match:
                        yield split, label, int(match[3]), file.read_bytes()
        return
    try:
        with tarfile.open(source, "r:*") as archive:
            for member in archive:
                match = _REVIEW.search(member.name)
                extracted = archive.extractfile(member) if match and member.isfile() else None
                if match and extracted is not None:
                    yield match[1], match[2], int(match[3]), extracted.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{source}: cannot read this archive ({error}). Delete it and get it again.") from None


def _sorted_reviews(source: Path) -> dict[str, list[tuple[int, int, bytes]]]:
    """Per split, (label, file number, bytes) of every review: positive reviews first, each by number."""
    reviews: dict[str, list[tuple[int, int, bytes]]] = {"train": [], "test": []}
    for split, label, number, data in _raw_reviews(source):
        reviews[split].append((1 if label == "pos" else 0, number, data))
    for split, items in reviews.items():
        if not items:
            raise DataError(
                f"{source}: holds no labelled {split} review ({split}/pos/*.txt and {split}/neg/*.txt, "
                "named ID_RATING.txt). Get the Large Movie Review Dataset again."
            )
        items.sort(key=lambda item: (-item[0], item[1]))
    return reviews


def _tokenize_raw(source: Path, word_index: dict[str, int]) -> dict[str, np.ndarray]:
    """Reviews as flat rank arrays with offsets; a word the index lacks is rank 0 (out of vocabulary)."""
    arrays: dict[str, np.ndarray] = {}
    for split, items in _sorted_reviews(source).items():
        ranks: list[int] = []
        offsets = [0]
        for _, _, data in items:
            words = text_to_word_sequence(data.decode("utf-8", errors="replace"))
            ranks.extend(word_index.get(word, 0) for word in words)
            offsets.append(len(ranks))
        arrays[f"x_{split}"] = np.asarray(ranks, dtype=np.int32)
        arrays[f"x_{split}_offsets"] = np.asarray(offsets, dtype=np.int64)
        arrays[f"y_{split}"] = np.asarray([item[0] for item in items], dtype=np.int64)
    return arrays


def _raw_texts(source: Path) -> dict[str, np.ndarray]:
    """Reviews as one UTF-8 byte array per split with offsets, for load_texts."""
    arrays: dict[str, np.ndarray] = {}
    for split, items in _sorted_reviews(source).items():
        blob = b"".join(data for _, _, data in items)
        arrays[f"x_{split}"] = np.frombuffer(blob, dtype=np.uint8)
        arrays[f"x_{split}_offsets"] = np.cumsum([0, *(len(data) for _, _, data in items)]).astype(np.int64)
        arrays[f"y_{split}"] = np.asarray([item[0] for item in items], dtype=np.int64)
    return arrays


def _read_keras_npz(path: Path) -> dict[str, np.ndarray]:
    """Keras's imdb.npz (object arrays of rank lists), read with an unpickler that accepts numpy pieces only."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for split in ("train", "test"):
                for key in (f"x_{split}", f"y_{split}"):
                    with archive.open(f"{key}.npy") as member:
                        data = io.BytesIO(member.read())
                    version = np.lib.format.read_magic(data)
                    header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    _, _, dtype = header(data)
                    if dtype.hasobject:  # pickled lists: only numpy's own pieces may be unpickled
                        value = safe_unpickle(data.read())
                    else:
                        data.seek(0)
                        value = np.lib.format.read_array(data, allow_pickle=False)
                    arrays[key] = np.asarray(value)
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as error:
        raise DataError(f"{path}: not Keras's imdb.npz ({error}). Delete it and get it again.") from None
    flat: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        sequences = arrays[f"x_{split}"]
        flat[f"x_{split}_offsets"] = np.cumsum([0, *(len(sequence) for sequence in sequences)])
        flat[f"x_{split}"] = np.fromiter((w for sequence in sequences for w in sequence), np.int32)
        flat[f"y_{split}"] = arrays[f"y_{split}"].astype(np.int64)
    return flat


def _find_source(search: _Search, path: str | Path | None) -> tuple[str, Path, list[Path]]:
    """("npz" | "raw", the source, the folders searched), or DataError naming every place looked."""
    folders = _folders(search, path)
    for folder in folders:
        npz = folder if folder.suffix == ".npz" else search.first(folder / "imdb.npz")
        if npz:
            return "npz", npz, folders
    for folder in folders:
        if folder.is_file() or folder.name == "aclImdb":
            return "raw", folder, folders
        raw = search.first(folder / "aclImdb", *(folder / name for name in _ARCHIVES))
        if raw:
            return "raw", raw, folders
    if path is None:
        downloaded = search.download(_MIRROR + "imdb.npz", "imdb.npz", _NPZ_SHA256)
        if downloaded:
            return "npz", downloaded, folders
    raise search.failure()


def _required_word_index(search: _Search, folders: list[Path], source: Path) -> Path:
    index_file = _find_word_index(search, folders)
    if index_file is None:
        raise DataError(
            f"IMDB: found the reviews in {source} but not the word index that maps words to Keras's ids. "
            f"Put imdb_word_index.json ({_MIRROR}imdb_word_index.json) beside them."
        )
    return index_file


def _ranks(search: _Search, path: str | Path | None) -> dict[str, np.ndarray]:
    kind, source, folders = _find_source(search, path)
    if kind == "npz":
        return cached_arrays("imdb-npz", [source], lambda: _read_keras_npz(source))
    index_file = _required_word_index(search, folders, source)
    return cached_arrays("imdb-raw", [source, index_file], lambda: _tokenize_raw(source, _read_word_index(index_file)))


def load_texts(path: str | Path | None = None, seed: int = 113) -> Arrays:
    """The reviews as text: `(texts_train, y_train), (texts_test, y_test)`, object arrays of str, in
    load_data's order (texts_train[i] is x_train[i] before tokenising), for a TextVectorization.

    From Keras's imdb.npz (ids only) the words are decoded with the word index, joined by spaces.
    """
    search = _Search(INFO)
    kind, source, folders = _find_source(search, path)
    rng = np.random.RandomState(seed)
    if kind == "raw":
        arrays = cached_arrays("imdb-text", [source], lambda: _raw_texts(source))
    else:
        words = {rank: word for word, rank in _read_word_index(_required_word_index(search, folders, source)).items()}
        ranks = _ranks(search, path)
    result = []
    for split in ("train", "test"):
        order = np.arange(len(arrays[f"y_{split}"]) if kind == "raw" else len(ranks[f"y_{split}"]))
        rng.shuffle(order)
        texts = np.empty(len(order), dtype=object)
        if kind == "raw":
            blob, offsets = arrays[f"x_{split}"], arrays[f"x_{split}_offsets"]
            for row, review in enumerate(order):
                texts[row] = blob[offsets[review] : offsets[review + 1]].tobytes().decode("utf-8", errors="replace")
            labels = arrays[f"y_{split}"][order]
        else:
            flat, offsets = ranks[f"x_{split}"], ranks[f"x_{split}_offsets"]
            for row, review in enumerate(order):
                texts[row] = " ".join(
                    words.get(int(rank), "[UNK]") for rank in flat[offsets[review] : offsets[review + 1]]
                )
            labels = ranks[f"y_{split}"][order]
        result.append((texts, labels))
    return result[0], result[1]


def load_data(
    path: str | Path | None = None,
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> Arrays:
    """`(x_train, y_train), (x_test, y_test)`: reviews as object arrays of word-id lists, labels 0/1.

    Keras's rules: ids are rank + index_from; every review starts with start_char; ids outside
    [skip_top, num_words) become oov_char (or are dropped when oov_char=None); maxlen keeps the
    reviews shorter than maxlen; both splits are shuffled with `seed`.
    Built from raw reviews, a test word that the index lacks (it was made from the training
    reviews) is out of vocabulary.

    Usage (the data is not bundled, so this is not run as a doctest):

        (x_train, y_train), (x_test, y_test) = load_data(num_words=10000)
        x_train = hubel.data.pad_sequences(x_train, maxlen=500)
    """
    for name, value in (("skip_top", skip_top), ("index_from", index_from)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"imdb.load_data: expected `{name}` to be an integer >= 0. Received: {name}={value!r}")
    reserved = max(index_from, start_char or 0, oov_char or 0)
    if num_words is not None and (
        isinstance(num_words, bool) or not isinstance(num_words, int) or num_words <= reserved
    ):
        raise ConfigError(
            f"imdb.load_data: num_words={num_words!r} keeps no word: ids below {reserved + 1} are reserved "
            f"(start_char={start_char}, oov_char={oov_char}, index_from={index_from}). Use num_words=10000, say."
        )
    if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 2):
        raise ConfigError(
            f"imdb.load_data: expected `maxlen` to be an integer >= 2 or None. Received: maxlen={maxlen!r}"
        )
    arrays = _ranks(_Search(INFO), path)
    rng = np.random.RandomState(seed)
    splits = []
    for split in ("train", "test"):
        offsets = arrays[f"x_{split}_offsets"]
        ids = arrays[f"x_{split}"].astype(np.int64) + index_from
        ids[arrays[f"x_{split}"] == 0] = -1  # a word the index lacks: out of vocabulary
        if start_char is not None:  # one start id in front of each review
            ids = np.insert(ids, offsets[:-1], start_char)
            offsets = offsets + np.arange(len(offsets))
        order = np.arange(len(offsets) - 1)
        rng.shuffle(order)
        lengths = np.diff(offsets)[order]
        if maxlen is not None:
            order, lengths = order[lengths < maxlen], lengths[lengths < maxlen]
        splits.append((ids, offsets, order, lengths, arrays[f"y_{split}"][order]))
    if maxlen is not None and not all(len(order) for _, _, order, _, _ in splits):
        raise ConfigError(f"imdb.load_data: no review is shorter than maxlen={maxlen}. Increase maxlen.")
    if num_words is None:
        num_words = int(max(ids[ids >= 0].max() if ids.size else 0 for ids, *_ in splits))  # Keras: the largest id
    result = []
    for ids, offsets, order, _, labels in splits:
        kept = (ids >= skip_top) & (ids < num_words)
        if oov_char is not None:
            ids = np.where(kept, ids, oov_char)
        sequences = np.empty(len(order), dtype=object)
        for row, review in enumerate(order):
            start, stop = offsets[review], offsets[review + 1]
            sequences[row] = (ids[start:stop] if oov_char is not None else ids[start:stop][kept[start:stop]]).tolist()
        result.append((sequences, labels))
    return result[0], result[1]


@_register(INFO)
def _imdb(search: _Search) -> Arrays:
    return load_data()
