"""Text data with Keras's semantics: pad_sequences, text_to_word_sequence, and folders of text
files (text_folder, as keras.utils.text_dataset_from_directory)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hubel.data.folders import Skipped, _check_arguments, _choose_files, scan_folder
from hubel.errors import ConfigError, DataError

__all__ = [
    "KERAS_FILTERS",
    "TextFolderDataset",
    "decode_text",
    "pad_sequences",
    "read_text_file",
    "text_folder",
    "text_to_word_sequence",
]

# Keras's Tokenizer filters: every ASCII punctuation mark but the apostrophe, plus tab and newline.
# IMDB's word index was made with them ("<br />" becomes "br", "fly-fishing" two words, "don't" one).
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
_TO_SPACES = str.maketrans(dict.fromkeys(KERAS_FILTERS, " "))


def text_to_word_sequence(text: str) -> list[str]:
    """Lower-case `text`, turn Keras's filter characters into spaces and split on spaces.

    Only the space splits, as in Keras: a no-break space or U+0085 stays inside its word (IMDB's
    word index holds such words).

    Example:
        >>> text_to_word_sequence("Fly-fishing, don't you think?<br />Great.")
        ['fly', 'fishing', "don't", 'you', 'think', 'br', 'great']
    """
    return [word for word in text.lower().translate(_TO_SPACES).split(" ") if word]


def pad_sequences(
    sequences: Sequence[Sequence[int]] | np.ndarray,
    maxlen: int | None = None,
    dtype: str | np.dtype = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: float = 0,
) -> np.ndarray:
    """Sequences of different lengths as one (N, maxlen) array, like keras.utils.pad_sequences.

    Shorter sequences get `value` in front (padding='pre', the default) or behind ('post');
    longer ones lose their start (truncating='pre', the default) or their end ('post').
    maxlen=None pads to the longest sequence.

    Example:
        >>> pad_sequences([[1, 2, 3], [4]], padding="post", truncating="post", maxlen=2)
        array([[1, 2],
               [4, 0]], dtype=int32)
    """
    for name, given in (("padding", padding), ("truncating", truncating)):
        if given not in ("pre", "post"):
            raise ConfigError(f"pad_sequences: expected `{name}` to be 'pre' or 'post'. Received: {name}={given!r}")
    try:
        lengths = [len(sequence) for sequence in sequences]
    except TypeError:
        raise DataError(
            "pad_sequences: expected a list of sequences of token ids (lists or arrays). "
            f"Received an item of type {type(next(s for s in sequences if not hasattr(s, '__len__'))).__name__}."
        ) from None
    if maxlen is None:
        maxlen = max(lengths, default=0)
    elif isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 1:
        raise ConfigError(
            f"pad_sequences: expected `maxlen` to be a positive integer or None. Received: maxlen={maxlen!r}"
        )
    padded = np.full((len(lengths), maxlen), value, dtype=dtype)
    for row, (sequence, length) in enumerate(zip(sequences, lengths, strict=True)):
        if length == 0:
            continue
        kept = sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen]
        try:
            values = np.asarray(kept, dtype=dtype)
        except (TypeError, ValueError):
            raise DataError(
                f"pad_sequences: sequence {row} holds values that are not numbers of dtype {dtype}: {list(kept)[:5]}..."
            ) from None
        if values.ndim != 1:
            raise DataError(f"pad_sequences: sequence {row} has shape {values.shape}; expected a flat list of ids.")
        if padding == "pre":
            padded[row, maxlen - len(values) :] = values
        else:
            padded[row, : len(values)] = values
    return padded


# ----- folders of text files --------------------------------------------------------------------


@dataclass
class TextFolderDataset:
    """The texts of one subset of a text folder, in memory: `texts` (an object array of str),
    `labels` (int64, indices into class_names), the files they came from, and what was skipped
    or read with a fallback (`skipped`, `notes`)."""

    texts: np.ndarray
    labels: np.ndarray
    files: list[str]
    class_names: list[str]
    subset: str
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)

    def numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """(texts, labels), for fit(x, y)."""
        return self.texts, self.labels

    def __repr__(self) -> str:
        return f"TextFolderDataset({self.subset}: {len(self)} texts, classes {self.class_names})"


def read_text_file(path: Path) -> tuple[str | None, str | None]:
    """(text, None), (text, note) when it was not UTF-8 and was read as Latin-1 (nothing is lost),
    or (None, why) when it is unreadable or holds no text."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"unreadable ({error.strerror or error})"
    text, note = decode_text(data)
    if not text.strip():
        return None, "empty file"
    return text, note


def decode_text(data: bytes) -> tuple[str, str | None]:
    """(text, None) for UTF-8 (a byte-order mark dropped); else the bytes read as Latin-1, which
    keeps every byte, with a note saying so."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as error:
        return data.decode("latin-1"), f"not UTF-8 (byte {error.start}): read as Latin-1"


def text_folder(
    root: str | Path,
    *,
    validation_split: float | None = None,
    subset: str | None = None,
    seed: int | None = None,
    follow_links: bool = False,
    verbose: bool = True,
    split_file: str | Path | None = None,
) -> TextFolderDataset | tuple[TextFolderDataset, TextFolderDataset]:
    """Text files under `root`, one sub-folder per class (root/<class>/*.txt, or
    root/{train,val,test}/<class>/*.txt), as keras.utils.text_dataset_from_directory reads them.

    subset and validation_split work as for image_folder (the split is stratified and recorded,
    so a file keeps its subset). Empty and unreadable files are skipped and listed; a file that
    is not UTF-8 is read as Latin-1 and listed. Nothing stops the load but a folder with no text.

    Usage:

        train, validation = text_folder("reviews/", validation_split=0.2, subset="both")
        model.fit(*train.numpy(), validation_data=validation.numpy())
    """
    _check_arguments(32, validation_split, subset, "int")
    scan = scan_folder(root, follow_links, extensions={".txt"}, noun="text files")
    wanted = ["training", "validation"] if subset == "both" else [subset or "training"]
    chosen = _choose_files(scan, wanted, validation_split, seed, split_file)
    skipped, notes = list(scan.skipped), []
    datasets = []
    for split, files in chosen.items():
        texts, labels, kept = [], [], []
        for relative, label in files:
            text, why = read_text_file(scan.root / relative)
            if text is None:
                skipped.append(Skipped(relative, why or "unreadable"))
                continue
            if why:
                notes.append(Skipped(relative, why))
            texts.append(text)
            labels.append(label)
            kept.append(relative)
        if not texts:
            raise DataError(f"{scan.root}: no readable text in the {split} subset ({len(files)} files tried).")
        array = np.empty(len(texts), dtype=object)
        array[:] = texts
        datasets.append(
            TextFolderDataset(array, np.asarray(labels, dtype=np.int64), kept, scan.class_names, split, skipped, notes)
        )
    if verbose:
        counts = ", ".join(f"{len(dataset)} for {dataset.subset}" for dataset in datasets)
        lines = [
            f"Found {sum(len(f) for f in scan.splits.values())} files in {len(scan.class_names)} classes; {counts}."
        ]
        if skipped:
            lines.append(f"Skipped {len(skipped)}: " + "; ".join(f"{s.path} ({s.reason})" for s in skipped[:5]))
        if notes:
            lines.append(f"Read {len(notes)} as Latin-1: " + ", ".join(n.path for n in notes[:5]))
        print(" ".join(lines), file=sys.stderr)
    return (datasets[0], datasets[1]) if subset == "both" else datasets[0]
