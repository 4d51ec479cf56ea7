import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import hubel
from hubel import layers as L
from hubel.serve import create_app


@pytest.fixture(scope="module")
def digits_model():
    (x_train, y_train), (x_test, y_test) = hubel.datasets.load("digits")
    hubel.set_seed(0)
    model = hubel.Sequential([
        L.Input((8, 8, 1)), L.Rescaling(1 / 255), L.Conv2D(16, 3, padding="same", activation="relu"),
        L.Flatten(), L.Dense(10, activation="softmax"),
    ])  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=10, verbose=0)
    model.metadata.update(class_names=[f"digit {d}" for d in range(10)], data="digits")
    return model, x_test, y_test


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def client(digits_model, tmp_path):
    model, _, _ = digits_model
    return TestClient(create_app(model.save(tmp_path / "digits.hubel"), max_upload_bytes=2**20))


def test_predict_an_uploaded_image_as_model_predict_does(client, digits_model):
    model, x_test, y_test = digits_model
    right = 0
    for pixels, label in zip(x_test[:20], y_test[:20]):
        answer = client.post("/predict?top=2", files={"file": ("d.png", png(pixels), "image/png")})
        assert answer.status_code == 200
        body = answer.json()
        expected = model.predict(pixels[None])[0]
        assert body["predictions"][0]["class"] == f"digit {expected.argmax()}" and len(body["predictions"]) == 2
        assert body["predictions"][0]["probability"] == pytest.approx(float(expected.max()), abs=1e-5)
        assert body["model"] == "digits" and body["ms"] >= 0
        right += body["predictions"][0]["class"] == f"digit {label}"
    assert right >= 16
    batch = client.post("/predict", json={"images": [base64.b64encode(png(p)).decode() for p in x_test[:3]]})
    assert batch.status_code == 200 and len(batch.json()["results"]) == 3


def test_health_model_and_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    described = client.get("/model").json()
    assert described["classes"][0] == "digit 0" and described["input"] == [8, 8, 1] and described["data"] == "digits"
    assert client.get("/docs").status_code == 200 and "/predict" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("request_arguments", "status", "message"),
    [
        ({"files": {"file": ("x.png", b"not an image", "image/png")}}, 422, "not a usable image"),
        ({"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"file": ("x.png", png(np.zeros((8, 8), np.uint8))[:40], "image/png")}}, 422, "not a usable image"),
        ({"files": {"photo": ("x.png", b"abc", "image/png")}}, 422, "multipart field `file`"),
        ({"content": b"raw", "headers": {"content-type": "text/plain"}}, 415, "multipart/form-data"),
        ({"json": {"images": ["%%%"]}}, 422, "not base64"),
        ({"json": {"texts": ["a"]}}, 422, '"images"'),
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
        ({"content": b"x" * (2**20 + 10), "headers": {"content-type": "application/json"}}, 413, "limit"),
    ],
    ids=[
        "not-image",
        "empty",
        "truncated",
        "wrong-field",
        "wrong-type",
        "bad-base64",
        "texts-to-image-model",
        "bad-json",
        "too-large",
    ],
)
def test_bad_requests_are_4xx_json_and_the_server_keeps_serving(client, request_arguments, status, message):
    answer = client.post("/predict", **request_arguments)
    assert answer.status_code == status and message in answer.json()["error"]
    assert client.get("/health").status_code == 200


def test_a_decompression_bomb_is_refused(client):
    buffer = io.BytesIO()
    Image.new("1", (40_000, 40_000)).save(buffer, format="PNG")  # 1.6 gigapixels in a small file
    answer = client.post("/predict", files={"file": ("bomb.png", buffer.getvalue(), "image/png")})
    assert answer.status_code == 422 and "decompression bomb" in answer.json()["error"]


def test_a_token_guards_everything_but_health(digits_model):
    model, x_test, _ = digits_model
    client = TestClient(create_app(model, token="s3cret"))
    assert client.get("/health").status_code == 200
    assert client.get("/model").status_code == 401
    upload = {"files": {"file": ("d.png", png(x_test[0]), "image/png")}}
    assert client.post("/predict", **upload).status_code == 401
    assert client.post("/predict", headers={"Authorization": "Bearer s3cret"}, **upload).status_code == 200


def test_a_text_model_takes_text_fields_files_and_json():
    vectorize = L.TextVectorization(output_sequence_length=4, vocabulary=["good", "bad"])
    model = hubel.Sequential([vectorize, L.Embedding(4, 3), L.GlobalAveragePooling1D(), L.Dense(1, "sigmoid")])
    model.metadata["class_names"] = ["negative", "positive"]
    client = TestClient(create_app(model))
    expected = float(model.predict(["good film"])[0, 0])
    by_field = client.post("/predict", data={"text": "good film"}).json()["predictions"]
    by_file = client.post("/predict", files={"file": ("r.txt", b"good film", "text/plain")}).json()["predictions"]
    assert by_field == by_file
    assert {p["class"]: p["probability"] for p in by_field}["positive"] == pytest.approx(expected, abs=1e-6)
    assert len(client.post("/predict", json={"texts": ["good", "bad"]}).json()["results"]) == 2
    empty = client.post("/predict", files={"file": ("r.txt", b"   ", "text/plain")})
    assert empty.status_code == 400 and "empty" in empty.json()["error"]
