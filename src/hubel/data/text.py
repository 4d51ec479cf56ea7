"""Text helpers with Keras's semantics: pad_sequences and text_to_word_sequence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hubel.errors import ConfigError, DataError

__all__ = ["KERAS_FILTERS", "pad_sequences", "text_to_word_sequence"]

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
