import numpy as np
import pytest
import torch

import hubel
from helpers import check_layer
from hubel import layers as L
from hubel.errors import ConfigError, DataError


def test_embedding_shapes_params_and_lookup():
    layer = L.Embedding(10000, 32, input_length=500)
    assert layer.declared_input_shape == (500,)
    check_layer(layer, (500,), (500, 32), 320000)
    assert layer.embeddings.abs().max() <= 0.05  # Keras 'uniform': U(-0.05, 0.05)
    ids = torch.tensor([[3, 0, 9999]])
    output = layer(ids)  # (N, output_dim, L) inside; Keras layout is (N, L, output_dim)
    torch.testing.assert_close(output.movedim(1, -1)[0], layer.embeddings[[3, 0, 9999]])


def test_embedding_out_of_range_ids_say_what_to_do():
    layer = L.Embedding(10, 4)
    layer.build((3,))
    with pytest.raises(DataError, match=r"token ids must lie in \[0, 10\).*ids from 0 to 12\. Raise input_dim"):
        layer(torch.tensor([[0, 5, 12]]))


def test_conv1d_after_embedding():
    from hubel import Sequential

    model = Sequential([L.Embedding(100, 8, input_length=20), L.Conv1D(4, 5), L.GlobalMaxPooling1D(), L.Dense(1)])
    assert model.output_shape == (None, 1)
    assert model(torch.randint(0, 100, (3, 20))).shape == (3, 1)


def test_initializers_use_keras_fans_for_embeddings_and_biases():
    torch.manual_seed(0)
    embedding = L.Embedding(54, 2, embeddings_initializer="lecun_uniform")
    embedding.build((4,))
    bound = (3 / 54) ** 0.5  # Keras's fans for a (54, 2) matrix: fan_in 54
    assert embedding.embeddings.abs().max() <= bound and embedding.embeddings.abs().max() > 0.8 * bound
    dense = L.Dense(100, bias_initializer="he_uniform")
    dense.build((3,))
    bias_bound = (6 / 100) ** 0.5  # a vector's fans are its length
    assert dense.bias.abs().max() <= bias_bound and dense.bias.abs().max() > 0.8 * bias_bound


# ----- TextVectorization -------------------------------------------------------------------------
# Keras 3.15's TextVectorization gave exactly these vocabularies and ids (tests/keras_parity checks
# the same rules against Keras itself on real reviews).


def test_text_vectorization_learns_keras_vocabulary_order():
    layer = L.TextVectorization(max_tokens=6)
    layer.adapt(["The cat sat.", "the CAT", "the dog", "a bird"])
    # counts: the 3, cat 2, then ties in reverse order: sat, dog, bird, a; max_tokens keeps 4 words
    assert layer.get_vocabulary() == ["", "[UNK]", "the", "cat", "sat", "dog"]
    assert layer.vocabulary_size() == 6


def test_text_vectorization_standardizes_splits_and_pads_like_keras():
    layer = L.TextVectorization(output_sequence_length=5, vocabulary=["don't", "dont", "café", "tab", "here"])
    # ASCII lower case only (tf.strings.lower), punctuation deleted (the apostrophe too), ASCII whitespace splits
    np.testing.assert_array_equal(layer(["Dont! CAFÉ tab\there", "x"]), [[3, 1, 5, 6, 0], [1, 0, 0, 0, 0]])
    np.testing.assert_array_equal(layer("a b c d e f g"), [[1, 1, 1, 1, 1]])  # cut at the end
    characters = L.TextVectorization(split="character", standardize=None, vocabulary=["a", "b"])
    np.testing.assert_array_equal(characters(["abca"]), [[2, 3, 1, 2]])


def test_text_vectorization_bad_arguments_and_inputs():
    with pytest.raises(ConfigError, match="Received: output_mode='multi_hot'"):
        L.TextVectorization(output_mode="multi_hot")
    with pytest.raises(ConfigError, match="Received: standardize='upper'"):
        L.TextVectorization(standardize="upper")
    with pytest.raises(ConfigError, match="max_tokens=2"):
        L.TextVectorization(max_tokens=2)
    with pytest.raises(ConfigError, match="no vocabulary: call adapt"):
        L.TextVectorization()(["text"])
    with pytest.raises(ConfigError, match="'a' twice"):
        L.TextVectorization(vocabulary=["a", "b", "a"])
    with pytest.raises(DataError, match="adapt\\(\\) got no text"):
        L.TextVectorization().adapt([])
    with pytest.raises(DataError, match="expected strings"):
        L.TextVectorization(vocabulary=["a"])([1, 2])
    with pytest.raises(ConfigError, match="set output_sequence_length"):
        hubel.Sequential([L.TextVectorization(vocabulary=["a"]), L.Embedding(3, 2)])


def test_a_model_with_text_vectorization_takes_strings_and_saves_its_vocabulary(tmp_path):
    texts = ["good great fine", "bad awful poor", "great good", "awful bad"] * 25
    labels = np.array([1, 0, 1, 0] * 25)
    vectorize = L.TextVectorization(max_tokens=20, output_sequence_length=6)
    vectorize.adapt(texts)
    model = hubel.Sequential([vectorize, L.Embedding(20, 8), L.GlobalAveragePooling1D(), L.Dense(1, "sigmoid")])
    assert model.get_layer("text_vectorization").output_shape == (None, 6)
    model.compile(optimizer=hubel.optimizers.Adam(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(texts, labels, epochs=10, verbose=0, validation_split=0.2)
    assert history.history["val_accuracy"][-1] == 1.0
    probabilities = model.predict(["good good", "awful", "never seen words"]).ravel()
    assert probabilities[0] > 0.8 and probabilities[1] < 0.2
    np.testing.assert_allclose(model.predict(vectorize(["good good"])).ravel(), probabilities[:1], rtol=1e-6)
    assert model.evaluate(np.array(texts), labels, verbose=0)[1] == 1.0
    loaded = hubel.load_model(model.save(tmp_path / "text.hubel"))
    np.testing.assert_allclose(loaded.predict(["good good", "awful", "never seen words"]).ravel(), probabilities)
    assert loaded.layers[0].get_vocabulary() == vectorize.get_vocabulary()


def test_functional_text_model_from_a_string_input():
    vectorize = L.TextVectorization(output_sequence_length=4, vocabulary=["a", "b"])
    inputs = L.Input(shape=(1,), dtype="string")
    outputs = L.GlobalMaxPooling1D()(L.Embedding(4, 3)(vectorize(inputs)))
    model = hubel.Model(inputs, outputs)
    assert model.predict(["a b", "b"]).shape == (2, 3)


def test_text_vectorization_ngrams_follow_the_words():
    layer = L.TextVectorization(ngrams=2, vocabulary=["the cat", "cat", "the"])
    assert layer.tokenize("The cat sat") == ["the", "cat", "sat", "the cat", "cat sat"]
    np.testing.assert_array_equal(layer(["the cat sat"]), [[4, 3, 1, 2, 1]])
    assert L.TextVectorization(ngrams=(3,)).tokenize("a b c d") == ["a b c", "b c d"]
    with pytest.raises(ConfigError, match="Received: ngrams='2'"):
        L.TextVectorization(ngrams="2")
