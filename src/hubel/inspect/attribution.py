"""Which words pushed a text model's prediction: occlusion, one word at a time.

    words = hubel.inspect.word_attributions(model, "a dull, dull film with one great scene")
    html = hubel.inspect.highlight_words(words)

A word's score is how much the probability of the explained class drops when that word is left
out of the text (positive: the word argued for the class). It needs nothing from the model but
predict on strings, so it explains any model whose first layer is a TextVectorization, and
it reads the text the way the model does (the same standardize and split).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from hubel.errors import ConfigError

__all__ = ["WordScore", "highlight_words", "word_attributions"]

_PIECES = re.compile(r"[^ \t\n\r\x0b\x0c]+|[ \t\n\r\x0b\x0c]+")  # words and the whitespace between them


@dataclass(frozen=True)
class WordScore:
    text: str  # the word as written (or the whitespace between words, with score 0)
    score: float  # drop in the explained class's probability without it
    is_word: bool


def _vectorizer(model: Any) -> Any:
    vectorizers = getattr(model, "_vectorizers", [None])
    if not vectorizers or vectorizers[0] is None:
        raise ConfigError(
            f"{getattr(model, 'name', 'the model')}: word attributions need a model that takes text (a "
            "TextVectorization first). For token ids, put the vectorizer in front of the model."
        )
    return vectorizers[0]


def _class_probability(outputs: np.ndarray, class_index: int) -> np.ndarray:
    if outputs.shape[1] == 1:  # one sigmoid unit: the probability of class 1
        positive = np.clip(outputs[:, 0], 0.0, 1.0)
        return positive if class_index == 1 else 1.0 - positive
    return outputs[:, class_index]


def word_attributions(
    model: Any, text: str, class_index: int | None = None, max_words: int = 400, batch_size: int = 256
) -> list[WordScore]:
    """Every word of `text` (and the whitespace between, score 0) with its occlusion score for
    `class_index` (default: the predicted class). Words past max_words are scored 0."""
    vectorizer = _vectorizer(model)
    pieces = _PIECES.findall(text)
    words = [i for i, piece in enumerate(pieces) if not piece.isspace() and vectorizer.tokenize(piece)]
    full = model.predict([text])
    if class_index is None:
        class_index = int(full[0, 0] > 0.5) if full.shape[1] == 1 else int(full[0].argmax())
    base = float(_class_probability(full, class_index)[0])
    scored = words[:max_words]
    variants = ["".join(p for j, p in enumerate(pieces) if j != i) for i in scored]
    drops = base - _class_probability(model.predict(variants, batch_size=batch_size), class_index) if variants else []
    score_of = dict(zip(scored, (float(d) for d in drops)))
    return [WordScore(piece, score_of.get(i, 0.0), i in score_of or i in words) for i, piece in enumerate(pieces)]


def highlight_words(words: list[WordScore], limit: int | None = None) -> str:
    """HTML for the text with each word shaded by its score: green for, red against; the
    strongest word at full colour. limit cuts the text after that many words (with an ellipsis)."""
    largest = max((abs(word.score) for word in words), default=0.0) or 1.0
    parts, shown = [], 0
    for word in words:
        if word.is_word:
            shown += 1
            if limit is not None and shown > limit:
                parts.append(" …")
                break
        text = html.escape(word.text)
        if not word.is_word or word.score == 0.0:
            parts.append(text)
            continue
        strength = min(1.0, abs(word.score) / largest)
        colour = "40,160,80" if word.score > 0 else "215,60,60"
        parts.append(
            f'<span style="background:rgba({colour},{0.12 + 0.7 * strength:.2f})" '
            f'title="{word.score:+.3f}">{text}</span>'
        )
    return "".join(parts)
