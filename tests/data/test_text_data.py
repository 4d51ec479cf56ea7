import json

import numpy as np
import pytest
from tests.conftest import SHARED_DATA

import hubel
from hubel.data import imdb
from hubel.data.text import pad_sequences, text_to_word_sequence
from hubel.errors import ConfigError, DataError

# Keras's first training review with num_words=10000 (keras.datasets.imdb.load_data()[0][0][0]): the
# tokenised text of aclImdb/train/pos/576_10.txt, 218 ids.
KERAS_FIRST_REVIEW = [
    1, 14, 22, 16, 43, 530, 973, 1622, 1385, 65, 458, 4468, 66, 3941, 4, 173, 36, 256, 5, 25, 100, 43, 838, 112, 50,
    670, 2, 9, 35, 480, 284, 5, 150, 4, 172, 112, 167, 2, 336, 385, 39, 4, 172, 4536, 1111, 17, 546, 38, 13, 447, 4,
    192, 50, 16, 6, 147, 2025, 19, 14, 22, 4, 1920, 4613, 469, 4, 22, 71, 87, 12, 16, 43, 530, 38, 76, 15, 13, 1247,
    4, 22, 17, 515, 17, 12, 16, 626, 18, 2, 5, 62, 386, 12, 8, 316, 8, 106, 5, 4, 2223, 5244, 16, 480, 66, 3785, 33,
    4, 130, 12, 16, 38, 619, 5, 25, 124, 51, 36, 135, 48, 25, 1415, 33, 6, 22, 12, 215, 28, 77, 52, 5, 14, 407, 16,
    82, 2, 8, 4, 107, 117, 5952, 15, 256, 4, 2, 7, 3766, 5, 723, 36, 71, 43, 530, 476, 26, 400, 317, 46, 7, 4, 2,
    1029, 13, 104, 88, 4, 381, 15, 297, 98, 32, 2071, 56, 26, 141, 6, 194, 7486, 18, 4, 226, 22, 21, 134, 476, 26,
    480, 5, 144, 30, 5535, 18, 51, 36, 28, 224, 92, 25, 104, 4, 226, 65, 16, 38, 1334, 88, 12, 16, 283, 5, 16, 4472,
    113, 103, 32, 15, 16, 5345, 19, 178, 32,
]  # fmt: skip


# ----- pad_sequences: Keras's rules --------------------------------------------------------------


def test_pad_sequences_pads_and_truncates_in_front_by_default():
    padded = pad_sequences([[1, 2, 3, 4], [5], []], maxlen=3)
    np.testing.assert_array_equal(padded, [[2, 3, 4], [0, 0, 5], [0, 0, 0]])
    assert padded.dtype == np.int32


def test_pad_sequences_post_and_longest_and_value():
    padded = pad_sequences([[1, 2, 3], [4]], padding="post", truncating="post", value=-1)
    np.testing.assert_array_equal(padded, [[1, 2, 3], [4, -1, -1]])
    np.testing.assert_array_equal(pad_sequences([[1, 2, 3]], maxlen=2, truncating="post"), [[1, 2]])
    assert pad_sequences([np.arange(5)], dtype="int64").dtype == np.int64


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"padding": "middle"}, "Received: padding='middle'"),
        ({"truncating": "end"}, "Received: truncating='end'"),
        ({"maxlen": 0}, "Received: maxlen=0"),
    ],
)
def test_pad_sequences_refuses_bad_arguments(arguments, message):
    with pytest.raises(ConfigError, match=message):
        pad_sequences([[1]], **arguments)


def test_pad_sequences_refuses_items_that_are_not_sequences():
    with pytest.raises(DataError, match="list of sequences"):
        pad_sequences([[1], 5])
    with pytest.raises(DataError, match="flat list"):
        pad_sequences([[[1, 2]], [[3, 4]]])


def test_text_to_word_sequence_follows_keras_tokenizer():
    # Keras splits on spaces only: a no-break space or U+0085 stays inside the word, as in its word index.
    assert text_to_word_sequence("It's GREAT!<br /><br />fly-fishing") == [
        "it's",
        "great",
        "br",
        "br",
        "fly",
        "fishing",
    ]
    assert text_to_word_sequence("most\x85and\ttab") == ["most\x85and", "tab"]


# ----- IMDB ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def imdb_10k():
    return imdb.load_data(num_words=10000)


def test_imdb_from_raw_reviews_matches_keras(imdb_10k):
    (x_train, y_train), (x_test, y_test) = imdb_10k
    assert x_train.shape == (25_000,) and x_test.shape == (25_000,) and x_train.dtype == object
    assert y_train.sum() == 12_500 and y_test.sum() == 12_500 and set(np.unique(y_train)) == {0, 1}
    position = next(row for row, review in enumerate(x_train) if review == KERAS_FIRST_REVIEW)
    assert y_train[position] == 1  # a positive review
    assert max(max(review) for review in x_train) == 9_999
    assert all(review[0] == 1 for review in x_test[:100])


def test_imdb_shuffle_is_seeded(imdb_10k):
    (x_train, _), _ = imdb_10k
    (again, _), _ = imdb.load_data(num_words=10000)
    (other, _), _ = imdb.load_data(num_words=10000, seed=1)
    assert list(again[:5]) == list(x_train[:5])
    assert list(other[:5]) != list(x_train[:5])


def test_imdb_word_index_decodes_a_review(imdb_10k):
    word_index = imdb.get_word_index()
    assert len(word_index) == 88_584 and word_index["the"] == 1 and word_index["br"] == 7
    words = {rank + 3: word for word, rank in word_index.items()}
    decoded = " ".join(words.get(i, "?") for i in KERAS_FIRST_REVIEW[1:6])
    assert decoded == "this film was just brilliant"


@pytest.fixture()
def tiny_imdb(tmp_path):
    """An aclImdb folder of four reviews and a word index of five words."""
    root = tmp_path / "data"
    reviews = {
        "train/pos/0_9.txt": "The film was great great",
        "train/neg/0_2.txt": "the plot was bad",
        "test/pos/3_8.txt": "Great!",
        "test/neg/7_1.txt": "bad, bad film and unknownword",
    }
    for name, text in reviews.items():
        (root / "aclImdb" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "aclImdb" / name).write_text(text)
    (root / "imdb_word_index.json").write_text(json.dumps({"the": 1, "was": 2, "film": 3, "great": 4, "bad": 5}))
    return root


def test_imdb_rules_on_a_tiny_copy(tiny_imdb):
    (x_train, y_train), (x_test, _) = imdb.load_data(path=tiny_imdb)
    # 'plot' is unknown: 2; num_words=None keeps the ids below the largest (Keras's rule), so 'bad' (8) is 2 too
    assert sorted(map(tuple, x_train)) == sorted([(1, 4, 6, 5, 7, 7), (1, 4, 2, 5, 2)])
    assert sorted(map(tuple, x_test)) == sorted([(1, 7), (1, 2, 2, 6, 2, 2)])
    assert sorted(y_train.tolist()) == [0, 1]
    (x_train, _), _ = imdb.load_data(path=tiny_imdb, num_words=7, oov_char=None, start_char=None)
    assert sorted(map(tuple, x_train)) == sorted([(4, 6, 5), (4, 5)])
    (x_train, _), _ = imdb.load_data(path=tiny_imdb, skip_top=5, index_from=0)
    assert sorted(map(tuple, x_train)) == sorted([(2, 2, 2, 2, 2, 2), (2, 2, 2, 2, 2)])
    (x_train, y_train), (x_test, _) = imdb.load_data(path=tiny_imdb, maxlen=6)
    assert list(map(tuple, x_train)) == [(1, 4, 2, 5, 2)] and y_train.tolist() == [0] and len(x_test) == 1


def test_imdb_bad_arguments_say_what_to_do(tiny_imdb):
    with pytest.raises(ConfigError, match="num_words=3 keeps no word"):
        imdb.load_data(path=tiny_imdb, num_words=3)
    with pytest.raises(ConfigError, match="no review is shorter than maxlen=2"):
        imdb.load_data(path=tiny_imdb, maxlen=2)
    with pytest.raises(ConfigError, match="skip_top"):
        imdb.load_data(path=tiny_imdb, skip_top=-1)


def test_imdb_missing_data_names_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBEL_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"IMDB movie reviews not found\. Looked in: .*imdb\.npz.*aclImdb.*To get it"):
        imdb.load_data()
    with pytest.raises(DataError, match="does not exist"):
        imdb.load_data(path=tmp_path / "nowhere")
    (tmp_path / "aclImdb" / "train" / "pos").mkdir(parents=True)
    (tmp_path / "imdb_word_index.json").write_text('{"the": 1}')
    with pytest.raises(DataError, match="no labelled train review"):
        imdb.load_data()


def test_imdb_raw_reviews_without_the_word_index(tiny_imdb):
    (tiny_imdb / "imdb_word_index.json").unlink()
    with pytest.raises(DataError, match="not the word index"):
        imdb.load_data(path=tiny_imdb)


def test_imdb_reads_keras_npz_without_trusting_pickles(tmp_path):
    sequences = np.empty(2, dtype=object)
    sequences[0], sequences[1] = [1, 2, 3], [4, 5]
    np.savez(
        tmp_path / "imdb.npz", x_train=sequences, y_train=np.array([1, 0]), x_test=sequences, y_test=np.array([0, 1])
    )
    (x_train, y_train), _ = imdb.load_data(path=tmp_path / "imdb.npz", num_words=9)
    assert sorted(map(tuple, x_train)) == [(1, 4, 5, 6), (1, 7, 8)]
    assert {tuple(review): label for review, label in zip(x_train, y_train)} == {(1, 4, 5, 6): 1, (1, 7, 8): 0}

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    evil = np.empty(1, dtype=object)
    evil[0] = Evil()
    np.savez(tmp_path / "evil.npz", x_train=evil, y_train=np.array([1]), x_test=evil, y_test=np.array([1]))
    with pytest.raises(DataError, match=r"not Keras's imdb\.npz"):
        imdb.load_data(path=tmp_path / "evil.npz")


def test_imdb_is_a_builtin_dataset():
    assert "imdb" in hubel.datasets.list_datasets()
    assert hubel.datasets.info("imdb").kind == "text"
    from hubel.datasets.imdb import get_word_index, load_data  # Keras's import path

    assert load_data is imdb.load_data and get_word_index is imdb.get_word_index
    assert (SHARED_DATA / "imdb" / "imdb_word_index.json").exists()


def test_imdb_texts_come_in_load_data_order(imdb_10k):
    (texts, labels), (_, test_labels) = imdb.load_texts()
    (x_train, y_train), (_, y_test) = imdb_10k
    assert len(texts) == 25_000 and isinstance(texts[0], str)
    np.testing.assert_array_equal(labels, y_train)
    np.testing.assert_array_equal(test_labels, y_test)
    word_index = imdb.get_word_index()
    for row in (0, 1, 24_999):
        ids = [1] + [
            word_index[w] + 3 if word_index.get(w, 10**9) + 3 < 10000 else 2 for w in text_to_word_sequence(texts[row])
        ]
        assert ids == x_train[row]


def test_imdb_texts_from_keras_npz_are_decoded_words(tmp_path):
    sequences = np.empty(2, dtype=object)
    sequences[0], sequences[1] = [1, 2], [3]
    np.savez(
        tmp_path / "imdb.npz", x_train=sequences, y_train=np.array([1, 0]), x_test=sequences, y_test=np.array([0, 1])
    )
    (tmp_path / "imdb_word_index.json").write_text(json.dumps({"the": 1, "film": 2, "bad": 3}))
    (texts, labels), _ = imdb.load_texts(path=tmp_path)
    assert {text: label for text, label in zip(texts, labels)} == {"the film": 1, "bad": 0}


# ----- text folders --------------------------------------------------------------------------------


def test_text_folder_reads_classes_and_reports_bad_files(tmp_path, capsys):
    for label, texts in {"neg": ["awful film", "bad", "boring"], "pos": ["great film", "lovely", "superb"]}.items():
        (tmp_path / label).mkdir()
        for number, text in enumerate(texts):
            (tmp_path / label / f"{number}.txt").write_text(text)
    (tmp_path / "pos" / "empty.txt").write_text("  \n")
    (tmp_path / "pos" / "latin.txt").write_bytes("caf\xe9 tr\xe8s bien".encode("latin-1"))
    (tmp_path / "neg" / "notes.md").write_text("not a review")
    data = hubel.data.text_folder(tmp_path)
    assert data.class_names == ["neg", "pos"] and len(data) == 7
    assert "café très bien" in list(data.texts)
    assert sorted(data.labels.tolist()) == [0, 0, 0, 1, 1, 1, 1]
    reasons = {item.path: item.reason for item in data.skipped}
    assert reasons["pos/empty.txt"] == "empty file" and "not a text file name" in reasons["neg/notes.md"]
    assert [note.path for note in data.notes] == ["pos/latin.txt"]
    assert "Skipped 2" in capsys.readouterr().err
    train, validation = hubel.data.text_folder(tmp_path, validation_split=0.34, subset="both", verbose=False)
    assert len(train) + len(validation) == 7 and sorted(set(validation.labels.tolist())) == [0, 1]
    assert not set(train.files) & set(validation.files)


def test_text_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        hubel.data.text_folder(tmp_path / "missing")
    (tmp_path / "loose.txt").write_text("a review")
    with pytest.raises(DataError, match="holds 1 text files directly"):
        hubel.data.text_folder(tmp_path)
    (tmp_path / "pos").mkdir()
    with pytest.raises(DataError, match="holds no text files"):
        hubel.data.text_folder(tmp_path)
