"""hubel train / predict / evaluate / report on text: a folder of real IMDB reviews and the built-in imdb."""

import json
import tarfile

import numpy as np
import pytest
import yaml
from tests.conftest import SHARED_DATA

import hubel
from hubel import layers as L
from hubel.cli.main import main
from hubel.inspect import highlight_words, word_attributions
from hubel.models.zoo import create_model


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """reviews/{train,test}/{neg,pos}/*.txt: 300 + 300 training and 100 + 100 test reviews of the
    shared IMDB copy, plus an empty file and a Latin-1 one."""
    root = tmp_path_factory.mktemp("reviews")
    wanted = {("train", "pos"): 300, ("train", "neg"): 300, ("test", "pos"): 100, ("test", "neg"): 100}
    with tarfile.open(SHARED_DATA / "imdb" / "aclImdb_v1_labeled.tar.xz") as archive:
        for member in archive:
            parts = member.name.split("/")
            key = tuple(parts[1:3]) if len(parts) == 4 else None
            if key in wanted and wanted[key] > 0 and member.name.endswith(".txt"):
                wanted[key] -= 1
                target = root / parts[1] / parts[2] / parts[3]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.extractfile(member).read())
            if not any(wanted.values()):
                break
    (root / "train" / "pos" / "empty.txt").write_text("")
    (root / "train" / "neg" / "latin.txt").write_bytes("Un film m\xe9diocre, ennuyeux et trop long.".encode("latin-1"))
    return root


def test_train_predict_evaluate_and_report_on_a_folder_of_reviews(reviews, tmp_path, capsys):
    run = tmp_path / "reviews"
    assert main(["train", str(reviews), "--epochs", "30", "--out", str(run)]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "ngram_bag" and config["loss"] == "binary_crossentropy"
    assert "Skipped 1: train/pos/empty.txt (empty file)" in capsys.readouterr().err
    result = json.loads((run / "result.json").read_text())
    assert result["test_accuracy"] > 0.7  # 600 training reviews; chance is 0.5
    model = hubel.load_model(run / "model.hubel")
    assert type(model.layers[0]).__name__ == "TextVectorization" and model.metadata["class_names"] == ["neg", "pos"]
    probabilities = model.predict(["A wonderful, moving film. Superb acting.", "Awful. Boring, dull, a waste."])
    assert probabilities[0, 0] > probabilities[1, 0]
    review = next((reviews / "test" / "pos").glob("*.txt"))
    assert main(["predict", str(run), "an excellent film", str(review), "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert answers[0]["file"] is None and answers[0]["text"] == "an excellent film"
    assert answers[1]["file"] == str(review) and {c["class"] for c in answers[1]["top"]} == {"neg", "pos"}
    assert main(["evaluate", str(run), str(reviews)]) == 0
    assert f"accuracy {result['test_accuracy']:.4f} on 200 examples" in capsys.readouterr().out
    page = (run / "report.html").read_text()
    assert "Which words decided" in page and "evaluation texts" in page and "The ten worst predictions" in page
    assert f"{result['test_accuracy']:.2%}" in page
    assert main(["predict", str(run), str(reviews / "train" / "pos" / "empty.txt")]) == 2
    assert "empty file" in capsys.readouterr().err


def test_text_runs_refuse_what_does_not_fit(reviews, tmp_path, capsys):
    assert main(["train", str(reviews), "--model", "fashion_cnn", "--out", str(tmp_path / "a")]) == 2
    assert "'fashion_cnn' is not a text model" in capsys.readouterr().err
    assert main(["train", str(reviews), "--augment", "--out", str(tmp_path / "b")]) == 2
    assert "--augment is for images" in capsys.readouterr().err
    assert main(["train", "digits", "--model", "ngram_bag", "--out", str(tmp_path / "c")]) == 2
    assert "'ngram_bag' is a text model" in capsys.readouterr().err


def test_the_tutorial_text_model_is_exact():
    model = create_model("imdb_conv1d", num_classes=2)
    assert model.count_params() == 1_315_937
    assert [layer.output_shape for layer in model.layers] == [
        (None, 500, 128), (None, 494, 32), (None, 98, 32), (None, 92, 32), (None, 32), (None, 1)
    ]  # fmt: skip
    assert model.layers[-1].activation == "linear"  # the tutorial's Dense(1) under binary cross-entropy
    assert create_model("imdb_conv1d", num_classes=3).output_shape == (None, 3)
    assert create_model("ngram_bag", num_classes=2).output_shape == (None, 1)


def test_word_attributions_find_the_words_that_decide():
    texts = ["great film", "awful film", "great great plot", "awful dull plot", "film plot", "plot film"] * 20
    labels = np.array([1, 0, 1, 0, 1, 0] * 20)
    vectorize = L.TextVectorization(output_sequence_length=4)
    vectorize.adapt(texts)
    model = hubel.Sequential([vectorize, L.Embedding(10, 4), L.GlobalAveragePooling1D(), L.Dense(1, "sigmoid")])
    model.compile(optimizer=hubel.optimizers.Adam(0.05), loss="binary_crossentropy")
    model.fit(texts, labels, epochs=20, verbose=0)
    words = word_attributions(model, "A great, film!", class_index=1)
    assert [w.text for w in words] == ["A", " ", "great,", " ", "film!"]
    scores = {w.text: w.score for w in words if w.is_word}
    assert scores["great,"] > 0.1 and scores["great,"] > abs(scores["film!"])
    assert abs(scores["A"]) < 0.05  # an unknown word ([UNK]) hardly matters
    page = highlight_words(words)
    assert 'title="+' in page and "great," in page
    with pytest.raises(hubel.ConfigError, match="need a model that takes text"):
        word_attributions(hubel.Sequential([L.Input((3,)), L.Dense(1)]), "text")
