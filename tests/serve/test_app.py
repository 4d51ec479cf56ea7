import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

import hubel
from helpers import png
from hubel import layers as L
from hubel.serve import create_app


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


def test_unknown_paths_and_methods_get_json_errors_that_list_the_endpoints(client):
    for answer, status in ((client.get("/nothing"), 404), (client.get("/predict"), 405)):
        assert answer.status_code == status and "The endpoints: GET /, GET /health" in answer.json()["error"]


def test_a_long_text_field_is_read_up_to_the_upload_limit(review_model):
    client = TestClient(create_app(review_model, max_upload_bytes=4 * 2**20))
    answer = client.post("/predict", data={"text": "good " * 300_000})  # 1.5 MB, past starlette's 1 MB default
    assert answer.status_code == 200 and answer.json()["predictions"][0]["class"] == "positive"


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
        ({"content": b"abc", "headers": {"content-type": "multipart/form-data"}}, 400, "Missing boundary"),
        ({"params": {"top": "many"}, "files": {"file": ("x.png", b"a", "image/png")}}, 422, "top must be a whole"),
        ({"params": {"explain": "perhaps"}, "files": {"file": ("x.png", b"a", "image/png")}}, 422, "explain must be"),
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
        "multipart-without-boundary",
        "top-not-a-number",
        "explain-not-a-yes-or-no",
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


def test_explain_adds_a_grad_cam_overlay_of_the_predicted_class(client, digits_model):
    model, x_test, _ = digits_model
    answer = client.post("/predict?explain=true", files={"file": ("d.png", png(x_test[0]), "image/png")}).json()
    assert answer["predictions"][0]["class"] == f"digit {model.predict(x_test[:1])[0].argmax()}"
    prefix = "data:image/png;base64,"
    convolution = next(layer.name for layer in model.layers if isinstance(layer, L.Conv2D))
    assert answer["gradcam"].startswith(prefix) and answer["layer"] == convolution
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer["gradcam"][len(prefix) :]))))
    assert overlay.shape == (224, 224, 3)  # 8x8 enlarged 28 times, in whole pixels
    expected = hubel.inspect.heatmap_overlay(x_test[0], hubel.inspect.grad_cam(model, x_test[0]))
    np.testing.assert_array_equal(overlay, expected)
    plain = client.post("/predict", files={"file": ("d.png", png(x_test[0]), "image/png")}).json()
    assert "gradcam" not in plain


def test_explain_on_a_text_model_weighs_each_word(review_model):
    client = TestClient(create_app(review_model))
    answer = client.post("/predict?explain=true", data={"text": "good good film, bad"}).json()
    assert answer["predictions"][0]["class"] == "positive"
    scores = {word["text"]: word["score"] for word in answer["words"] if word["text"].strip()}
    assert scores["good"] > 0 > scores["bad"] and scores["film,"] == pytest.approx(0.0, abs=0.05)
    assert "".join(word["text"] for word in answer["words"]) == "good good film, bad"


def test_the_page_is_served_whole_from_the_app(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for element in ('id="drop"', 'id="file"', 'id="predictions"', 'id="gradcam"', 'id="card"', 'id="text"'):
        assert element in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: it works offline


def test_the_model_card_has_the_runs_figures(tmp_path, digits_model):
    model, _, _ = digits_model
    run = tmp_path / "digits-run"
    run.mkdir()
    model.save(run / "model.hubel")
    (run / "result.json").write_text('{"test_accuracy": 0.961, "test_loss": 0.12, "seconds": 3}')
    card = TestClient(create_app(run)).get("/model").json()
    assert card["model"] == "digits-run" and card["test_metrics"] == {"test_accuracy": 0.961, "test_loss": 0.12}
    assert card["saved"].startswith("20") and card["engine"]["name"] == "onnxruntime"
    assert card["engine"]["parity"] <= 1e-4 and card["classes"][3] == "digit 3"
    (run / "result.json").write_text('{"test_accuracy": 0.961, "test_loss": 0.12, "measured_on": "validation"}')
    assert TestClient(create_app(run)).get("/model").json()["test_metrics"] == {}  # no test/ split: none to show


def test_onnx_runtime_and_torch_give_the_same_answers(digits_model):
    model, x_test, _ = digits_model
    images = {"images": [base64.b64encode(png(pixels)).decode() for pixels in x_test[:32]]}
    answers = {}
    for engine in ("onnxruntime", "torch"):
        app = create_app(model, engine=engine)
        assert app.state.predictor.engine.name == engine
        answers[engine] = TestClient(app).post("/predict?top=10", json=images).json()["results"]
    expected = model.predict(x_test[:32])
    for row, onnx_answer, torch_answer in zip(expected, answers["onnxruntime"], answers["torch"]):
        for answer in (onnx_answer, torch_answer):
            probabilities = {p["class"]: p["probability"] for p in answer["predictions"]}
            np.testing.assert_allclose([probabilities[f"digit {d}"] for d in range(10)], row, atol=1e-5)


def test_an_unknown_engine_is_refused(digits_model):
    with pytest.raises(hubel.errors.ConfigError, match="engine must be one of auto, onnxruntime, torch"):
        create_app(digits_model[0], engine="tensorrt")


def test_concurrent_requests_share_batches_and_each_gets_its_own_answer(digits_model):
    import asyncio

    import httpx

    model, x_test, _ = digits_model
    app = create_app(model, max_batch=16, max_wait_ms=20)
    expected = model.predict(x_test[:40]).argmax(axis=1)

    async def send_all() -> list[dict]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve.test") as http:
            uploads = [http.post("/predict", files={"file": ("d.png", png(p), "image/png")}) for p in x_test[:40]]
            return [answer.json() for answer in await asyncio.gather(*uploads)]

    answers = asyncio.run(send_all())
    assert [answer["predictions"][0]["class"] for answer in answers] == [f"digit {d}" for d in expected]
    sizes = app.state.predictor.batcher.batch_sizes
    assert sum(sizes) == 40 and max(sizes) > 1 and max(sizes) <= 16 and len(sizes) < 40


def test_serve_says_when_the_port_is_taken(digits_model, tmp_path):
    import socket

    from hubel.serve import serve

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(hubel.errors.ConfigError, match=r"cannot listen on 127.0.0.1:\d+ .*Choose another --port"):
            serve(digits_model[0].save(tmp_path / "d.hubel"), "127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_hubel_serve_with_two_workers_answers_and_stops_on_interrupt(digits_model, tmp_path):
    import signal
    import socket
    import subprocess
    import sys
    import time

    import httpx

    model, x_test, _ = digits_model
    path = model.save(tmp_path / "digits.hubel")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "hubel", "serve", str(path), "--port", str(port), "--workers", "2"]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/predict", files={"file": ("d.png", png(x_test[0]), "image/png")}
                )
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
                time.sleep(0.3)
        assert answer.json()["predictions"][0]["class"] == f"digit {model.predict(x_test[:1])[0].argmax()}"
    finally:
        server.send_signal(signal.SIGINT)
        _, errors = server.communicate(timeout=60)
    assert server.returncode == 0 and "2 processes, inference: ONNX Runtime" in errors


def test_several_workers_need_a_model_file(digits_model):
    from hubel.serve import serve

    with pytest.raises(hubel.errors.ConfigError, match="more than 1 needs a model file"):
        serve(digits_model[0], workers=2)
