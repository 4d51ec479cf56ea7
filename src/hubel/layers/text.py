"""Text layers: TextVectorization (strings to token ids, with its vocabulary inside the model)
and Embedding (token ids to dense vectors)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from hubel.errors import ConfigError, DataError
from hubel.layers.args import positive_int
from hubel.layers.base import Layer, Shape, keras_to_internal, register_layer
from hubel.layers.initializers import INITIALIZERS
from hubel.layers.symbolic import is_symbolic

__all__ = ["Embedding", "TextVectorization"]

# Keras's standardize="lower_and_strip_punctuation": ASCII upper case lowered (tf.strings.lower) and
# these characters deleted; split="whitespace" splits on ASCII whitespace, as tf.strings.split does.
_PUNCTUATION = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'"
_WHITESPACE = " \t\n\r\x0b\x0c"
_LOWER = {ord(upper): ord(upper.lower()) for upper in map(chr, range(ord("A"), ord("Z") + 1))}
_STRIP = dict.fromkeys(map(ord, _PUNCTUATION))
_SPACES = {ord(space): " " for space in _WHITESPACE}
_TABLES = {
    "lower_and_strip_punctuation": str.maketrans({**_LOWER, **_STRIP}),
    "lower": str.maketrans(_LOWER),
    "strip_punctuation": str.maketrans(_STRIP),
    None: None,
}
MASK_TOKEN, OOV_TOKEN = "", "[UNK]"


@register_layer
class TextVectorization(Layer):
    """Strings to sequences of token ids, as Keras's TextVectorization(output_mode="int").

    Text is standardized (default: ASCII lower case, punctuation deleted), split (default: on
    whitespace), optionally recombined into n-grams (ngrams=2: every word, then every pair of
    neighbours, "the cat"), and each token looked up in the vocabulary: 0 is padding, 1 an unknown token,
    then the vocabulary learned by adapt() (most frequent first; ties in reverse order, as
    Keras). output_sequence_length pads or cuts each sequence at its end. The vocabulary is
    saved with the model, so a saved model takes raw strings.

    Example:
        >>> vectorize = TextVectorization(max_tokens=5, output_sequence_length=4)
        >>> vectorize.adapt(["the cat sat", "the cat", "the dog!"])
        >>> vectorize.get_vocabulary()
        ['', '[UNK]', 'the', 'cat', 'sat']
        >>> vectorize(["The dog sat."])
        array([[2, 1, 4, 0]])
    """

    accepts_integers: ClassVar[bool] = True
    accepts_strings: ClassVar[bool] = True

    def __init__(
        self,
        max_tokens: int | None = None,
        standardize: str | None = "lower_and_strip_punctuation",
        split: str | None = "whitespace",
        ngrams: int | tuple[int, ...] | list[int] | None = None,
        output_mode: str = "int",
        output_sequence_length: int | None = None,
        vocabulary: list[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("input_shape", (1,))  # one string per example, as keras.Input(shape=(1,), dtype="string")
        super().__init__(**kwargs)
        owner = "TextVectorization"
        if max_tokens is not None and (positive_int(owner, "max_tokens", max_tokens) < 3):
            raise ConfigError(f"{owner}: `max_tokens` must leave room for padding, [UNK] and a word (>= 3). "
                              f"Received: max_tokens={max_tokens}")  # fmt: skip
        self.max_tokens = max_tokens
        self.standardize = _option(owner, "standardize", standardize, tuple(_TABLES))
        self.split = _option(owner, "split", split, ("whitespace", "character", None))
        if isinstance(ngrams, bool) or not (
            ngrams is None
            or isinstance(ngrams, int)
            or (
                isinstance(ngrams, (tuple, list))
                and all(isinstance(n, int) and not isinstance(n, bool) for n in ngrams)
            )
        ):
            raise ConfigError(
                f"{owner}: `ngrams` must be None, an integer, or a tuple of integers. Received: ngrams={ngrams!r}"
            )
        self.ngrams = list(ngrams) if isinstance(ngrams, (tuple, list)) else ngrams
        widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else tuple(ngrams or ())
        if any(width < 1 for width in widths):
            raise ConfigError(f"{owner}: n-gram widths must be positive. Received: ngrams={ngrams!r}")
        self._widths = widths
        if output_mode != "int":
            raise ConfigError(
                f"{owner}: hubel supports output_mode='int' (token ids for an Embedding). Received: "
                f"output_mode={output_mode!r}. For a bag of words, follow it with GlobalAveragePooling1D."
            )
        self.output_mode = output_mode
        self.output_sequence_length = (
            None
            if output_sequence_length is None
            else positive_int(owner, "output_sequence_length", output_sequence_length)
        )
        self._vocabulary: list[str] = []
        self._lookup: dict[str, int] = {}
        if vocabulary is not None:
            self.set_vocabulary(vocabulary)

    # ----- vocabulary --------------------------------------------------------------------

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one string after standardize and split."""
        if not isinstance(text, str):
            raise DataError(f"{self.describe()}: expected strings. Received: {type(text).__name__} {text!r:.60}")
        table = _TABLES[self.standardize]
        text = text.translate(table) if table else text
        if self.split == "whitespace":
            tokens = [token for token in text.translate(_SPACES).split(" ") if token]
        else:
            tokens = list(text) if self.split == "character" else [text]
        if not self._widths:
            return tokens
        # Keras's n-grams: all of the first width, then all of the next, joined by spaces
        return [" ".join(tokens[i : i + n]) for n in self._widths for i in range(len(tokens) - n + 1)]

    def adapt(self, data: Iterable[Any]) -> None:
        """Learn the vocabulary from strings: a list or array of them, or batches of (texts, labels)."""
        counts: Counter[str] = Counter()
        seen = 0
        for item in _strings(data):
            counts.update(self.tokenize(item))
            seen += 1
        if not seen:
            raise DataError(f"{self.describe()}: adapt() got no text. Pass a list of strings.")
        ranked = sorted(counts.items(), key=lambda pair: (pair[1], pair[0]), reverse=True)  # Keras's order
        kept = ranked if self.max_tokens is None else ranked[: self.max_tokens - 2]
        self.set_vocabulary([token for token, _ in kept if token not in (MASK_TOKEN, OOV_TOKEN)])

    def set_vocabulary(self, vocabulary: list[str] | str) -> None:
        """The tokens, most important first (or a file of one token per line); padding and [UNK] come first."""
        if isinstance(vocabulary, (str, Path)):
            try:
                vocabulary = Path(vocabulary).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError) as error:
                raise DataError(f"{self.describe()}: cannot read the vocabulary file {vocabulary} ({error}).") from None
        tokens = [token for token in vocabulary if token not in (MASK_TOKEN, OOV_TOKEN)]
        if len(set(tokens)) != len(tokens):
            repeated = next(token for token, count in Counter(tokens).items() if count > 1)
            raise ConfigError(f"{self.describe()}: the vocabulary holds {repeated!r} twice; tokens must be unique.")
        if self.max_tokens is not None and len(tokens) + 2 > self.max_tokens:
            raise ConfigError(f"{self.describe()}: a vocabulary of {len(tokens) + 2} tokens (with padding and [UNK]) "
                              f"exceeds max_tokens={self.max_tokens}.")  # fmt: skip
        self._vocabulary = [MASK_TOKEN, OOV_TOKEN, *tokens]
        self._lookup = {token: index for index, token in enumerate(self._vocabulary)}

    def get_vocabulary(self) -> list[str]:
        return list(self._vocabulary)

    def vocabulary_size(self) -> int:
        return len(self._vocabulary)

    # ----- strings to ids ------------------------------------------------------------------

    def vectorize(self, texts: Any) -> np.ndarray:
        """(N,) strings -> (N, L) int64 ids; L is output_sequence_length, else the longest text."""
        if not self._vocabulary:
            raise ConfigError(f"{self.describe()} has no vocabulary: call adapt(texts) or pass vocabulary= first.")
        lookup = self._lookup
        rows = [[lookup.get(token, 1) for token in self.tokenize(text)] for text in _strings(texts)]
        length = self.output_sequence_length or max(map(len, rows), default=0) or 1
        ids = np.zeros((len(rows), length), dtype=np.int64)
        for row, values in enumerate(rows):
            values = values[:length]
            ids[row, : len(values)] = values
        return ids

    def __call__(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Strings give ids as a NumPy array (Keras's eager call); tensors of ids pass through."""
        if isinstance(x, (str, list, tuple, np.ndarray)) and not is_symbolic(x):
            return self.vectorize(x)
        return super().__call__(x, *args, **kwargs)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if tuple(input_shape) not in ((), (1,)):
            raise ConfigError(f"{self.describe()} takes one string per example (shape (1,)). Received: {input_shape}")
        if self.output_sequence_length is None:
            raise ConfigError(
                f"{self.describe()}: in a model, set output_sequence_length (e.g. 500) so that the layers after it "
                "know the sequence length."
            )
        return (self.output_sequence_length,)

    def build_for(self, x: Any) -> None:
        self.build(self.declared_input_shape or (1,))

    def forward(self, x: Tensor) -> Tensor:  # (N, L) ids, vectorized at the model's boundary -> (N, L)
        return x

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "max_tokens": self.max_tokens,
            "standardize": self.standardize,
            "split": self.split,
            "ngrams": self.ngrams,
            "output_mode": self.output_mode,
            "output_sequence_length": self.output_sequence_length,
            "vocabulary": self._vocabulary[2:] if self._vocabulary else None,
        }


def _strings(data: Any) -> Iterable[str]:
    """Strings one by one from a string, a list or array of strings, or batches of (texts, labels)."""
    if isinstance(data, str):
        yield data
        return
    if isinstance(data, np.ndarray):
        data = data.reshape(-1).tolist()
    for item in data:
        if isinstance(item, (tuple, list)) and len(item) == 2 and not isinstance(item[0], str):
            yield from _strings(item[0])  # a (texts, labels) batch
        elif isinstance(item, bytes):
            yield item.decode("utf-8", errors="replace")
        elif isinstance(item, np.ndarray) and item.ndim <= 1 and item.dtype.kind in "USO":
            yield from _strings(item)
        else:
            yield item


def _option(owner: str, name: str, value: Any, options: tuple[str | None, ...]) -> str | None:
    if value in options:
        return value
    listed = ", ".join(repr(option) for option in options)
    raise ConfigError(f"{owner}: expected `{name}` to be one of {listed}. Received: {name}={value!r}")


@register_layer
class Embedding(Layer):
    """Look up an `output_dim` vector for each token id in [0, input_dim).

    input_length (Keras 2) declares the sequence length, as input_shape=(input_length,) would.

    Example:
        >>> Embedding(10000, 32, input_length=500).declared_input_shape
        (500,)
        >>> Embedding(10000, 32).compute_output_shape((500,))
        (500, 32)
    """

    accepts_integers: ClassVar[bool] = True

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        embeddings_initializer: str = "uniform",
        input_length: int | None = None,
        **kwargs: Any,
    ) -> None:
        if input_length is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (positive_int("Embedding", "input_length", input_length),)
        super().__init__(**kwargs)
        self.input_dim = positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = positive_int("Embedding", "output_dim", output_dim)
        INITIALIZERS.get(embeddings_initializer)
        self.embeddings_initializer = embeddings_initializer
        self.input_length = input_length

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape, self.output_dim)

    def create_weights(self, input_shape: Shape) -> None:
        self.add_weight("embeddings", (self.input_dim, self.output_dim), self.embeddings_initializer)

    def forward(self, x: Tensor) -> Tensor:  # (N, L) int -> (N, output_dim, L)
        try:
            y = F.embedding(x.long(), self.embeddings)
        except IndexError:
            low, high = int(x.min()), int(x.max())
            raise DataError(
                f"{self.describe()}: token ids must lie in [0, {self.input_dim}) (input_dim={self.input_dim}); "
                f"the input holds ids from {low} to {high}. Raise input_dim or map rare words to one id."
            ) from None
        return keras_to_internal(y)  # (N, L, D) -> (N, D, L)

    def get_config(self) -> dict[str, Any]:
        config = {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embeddings_initializer": self.embeddings_initializer,
        }
        if self.input_length is not None:
            config["input_length"] = self.input_length
        return config
