import numpy as np
import pytest
import torch

import hubel
from hubel import inspect
from hubel import layers as L
from hubel.errors import ConfigError


def squares(count, seed):
    """16x16 images; class 1 holds a bright 4x4 square at a random place, class 0 none."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (count, 16, 16, 1)).astype(np.uint8)
    y = np.arange(count) % 2
    corners = rng.integers(0, 12, (count, 2))
    for image, label, (top, left) in zip(x, y, corners, strict=True):
        if label:
            image[top : top + 4, left : left + 4] = 255
    return x, y, corners


@pytest.fixture(scope="module")
def square_model():
    x, y, _ = squares(600, 0)
    hubel.clear_session()  # module-scoped: built before the per-test reset, so reset the names here
    hubel.set_seed(0)
    model = hubel.Sequential(
        [
            L.Input((16, 16, 1)),
            L.Rescaling(1 / 255),
            L.Conv2D(8, 3, padding="same", activation="relu"),
            L.Conv2D(8, 3, padding="same", activation="relu"),
            L.GlobalMaxPooling2D(),
            L.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer=hubel.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, verbose=0)
    assert history.history["accuracy"][-1] > 0.95
    return model, history


def test_grad_cam_highlights_the_bright_square_and_releases_its_hooks(square_model):
    model, _ = square_model
    x, y, corners = squares(20, 1)
    hits = 0
    for image, label, (top, left) in zip(x, y, corners, strict=True):
        if not label:
            continue
        heatmap = inspect.grad_cam(model, image, class_index=1)
        assert heatmap.shape == (16, 16) and heatmap.min() >= 0 and heatmap.max() == pytest.approx(1.0)
        row, column = np.unravel_index(heatmap.argmax(), heatmap.shape)
        hits += top - 1 <= row <= top + 4 and left - 1 <= column <= left + 4
    assert hits >= 9  # of 10 squares
    assert all(not layer._forward_hooks for layer in model.layers)
    with pytest.raises(KeyError):
        inspect.grad_cam(model, x[0], layer="no_such_layer")
    assert all(not layer._forward_hooks for layer in model.layers)
    model.trainable = False
    assert inspect.grad_cam(model, x[1], class_index=1).max() == pytest.approx(1.0)  # frozen models too
    model.trainable = True


def test_feature_maps_and_filters_have_the_layer_shapes(square_model, tmp_path):
    model, _ = square_model
    image = squares(2, 3)[0][1]
    maps = inspect.feature_maps(model, image, "conv2d_1")
    assert maps.shape == (16, 16, 8) and maps.min() >= 0  # after ReLU
    assert all(not layer._forward_hooks for layer in model.layers)
    # one mosaic: six 16x16 maps in rows of three, 4-pixel gaps (a quarter tile) left empty
    figure = inspect.show_feature_maps(model, image, max_maps=6, path=tmp_path / "maps.png")
    axis = next(axis for axis in figure.axes if axis.images)
    mosaic = np.ma.filled(axis.images[0].get_array().astype(float), np.nan)
    first_maps = inspect.feature_maps(model, image)
    assert mosaic.shape == (2 * 20 - 4, 3 * 20 - 4)
    np.testing.assert_allclose(mosaic[20:36, 20:36], first_maps[..., 4], rtol=1e-6)
    assert np.isnan(mosaic[16:20]).all() and np.isnan(mosaic[:, 16:20]).all()
    assert [text.get_text() for text in axis.texts] == [str(index) for index in range(6)]
    figure = inspect.show_filters(model, path=tmp_path / "filters.png")
    mosaic = np.ma.filled(next(a for a in figure.axes if a.images).images[0].get_array().astype(float), np.nan)
    kernel = model.layers[1].kernel.detach().numpy()[7].mean(axis=0)  # (3, 3), filter 7: third row, second column
    expected = (kernel - kernel.min()) / (kernel.max() - kernel.min())
    np.testing.assert_allclose(mosaic[8:11, 4:7], expected, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "maps.png").stat().st_size > 1000 and (tmp_path / "filters.png").exists()
    rgb = hubel.Sequential([L.Input((8, 8, 3)), L.Conv2D(4, 3)])
    picture = next(axis for axis in inspect.show_filters(rgb).axes if axis.images).images[0].get_array()
    assert picture.shape == (2 * 4 - 1, 2 * 4 - 1, 4)  # RGB kernels drawn in colour, gaps transparent
    assert (picture[:3, :3, 3] == 1).all() and (picture[3, :, 3] == 0).all()
    with pytest.raises(ConfigError, match="no Conv2D or DepthwiseConv2D layer"):
        inspect.show_filters(hubel.Sequential([L.Input((4,)), L.Dense(2)]))


def test_vertical_edge_kernel_on_a_vertical_bar(tmp_path):
    image = np.zeros((9, 9), np.float32)
    image[:, 3:6] = 1.0  # a bright vertical bar, three columns wide
    response = inspect.apply_kernel(image, "vertical_edge")
    interior = response[1:-1]
    assert np.all(interior[:, 2] == -3) and np.all(interior[:, 6] == 3)  # its left and right edges
    assert np.all(interior[:, [0, 4, 8]] == 0)  # flat regions, inside and outside the bar
    assert np.abs(inspect.apply_kernel(image, "horizontal_edge")[1:-1]).max() == 0
    batch = np.stack([image, image.T])[..., None]
    assert inspect.apply_kernel(batch, "sobel_x").shape == (2, 9, 9, 1)
    inspect.show_kernel(batch, "vertical_edge", path=tmp_path / "edges.png")
    assert (tmp_path / "edges.png").stat().st_size > 1000
    with pytest.raises(hubel.UnknownNameError, match="Did you mean 'sobel_x'"):
        inspect.apply_kernel(image, "sobelx")


def test_plot_history_curves_and_learning_rate_changes(square_model, tmp_path):
    _, fitted = square_model
    history = hubel.train.History(fitted.history, fitted.epoch)  # one dot per epoch: without the per-step log
    changed = hubel.train.History()
    for epoch, rate in enumerate([1e-3, 1e-3, 1e-4]):
        changed.append(epoch, {"loss": 1.0 / (epoch + 1), "val_loss": 1.2 / (epoch + 1), "learning_rate": rate})
    figure = inspect.plot_history([history, changed], labels=["squares", "other"], path=tmp_path / "curves.png")
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == ["loss", "accuracy", "learning rate"]
    rates = [label.get_text() for label in figure.axes[2].get_yticklabels() if label.get_text()]
    assert {"0.001", "0.0001"} <= set(rates) and not any("$" in text for text in rates)  # plain numbers, no mathtext
    loss_axis = figure.axes[0]
    assert len(loss_axis.lines) == 3 + 1  # squares training, other training + validation, one rate-change marker
    assert [line.get_label() for line in loss_axis.lines[:3]] == [
        "squares training",
        "other training",
        "other validation",
    ]
    with pytest.raises(ConfigError, match="none of \\['f1'\\] is in the history"):
        inspect.plot_history(history, metrics=["f1"])


def test_a_short_run_draws_every_step_and_validation_at_its_epochs_last_step(tmp_path):
    (x, y), _ = hubel.datasets.load("digits")
    hubel.set_seed(0)
    model = hubel.Sequential([L.Input((8, 8, 1)), L.Rescaling(1 / 16), L.Flatten(), L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = hubel.train.TrainingBudget(steps=60)  # the second epoch stops part-way, as a time budget may
    history = model.fit(x, y, epochs=2, batch_size=32, validation_split=0.2, verbose=0, callbacks=[stop])
    steps_per_epoch, kept = history.params["steps"], int(len(x) * 0.8)  # 37 batches of the 1,153 kept
    second = 60 - steps_per_epoch
    assert len(history.steps["loss"]) == len(history.steps["accuracy"]) == 60
    assert history.steps["epoch"][steps_per_epoch - 1] == 1.0
    assert history.steps["epoch"][-1] == pytest.approx(1 + second / steps_per_epoch)
    # each step's own batch, not the epoch's running mean: their mean over epoch 1 is the epoch's loss
    sizes = [32] * (steps_per_epoch - 1) + [kept - 32 * (steps_per_epoch - 1)]
    mean = np.average(history.steps["loss"][:steps_per_epoch], weights=sizes)
    assert mean == pytest.approx(history.history["loss"][0], rel=1e-5)
    assert hubel.train.History.from_dict(history.to_dict()).steps == history.steps
    figure = inspect.plot_history(history, path=tmp_path / "curves.png")
    loss_axis = figure.axes[0]
    labels = [line.get_label() for line in loss_axis.lines]
    assert "training (per step, smoothed)" in labels and "validation" in labels
    validation = loss_axis.lines[labels.index("validation")]
    assert list(validation.get_xdata()) == pytest.approx([1.0, 1 + second / steps_per_epoch])  # each epoch's last step
    assert len(loss_axis.lines[labels.index("training (per step, smoothed)")].get_xdata()) == 60


def test_confusion_matrix_and_report_match_a_hand_count():
    truth = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 1, 0, 1, 2, 2, 2, 0, 2])
    counts = inspect.confusion_matrix(truth, predicted)
    assert counts.tolist() == [[2, 1, 0], [0, 1, 1], [1, 0, 3]]
    np.testing.assert_allclose(inspect.confusion_matrix(truth, predicted, normalize="true").sum(axis=1), 1.0)
    probabilities = np.eye(3)[predicted] * 0.8 + 0.1
    assert np.array_equal(inspect.confusion_matrix(truth, probabilities), counts)
    report = inspect.classification_report(truth, probabilities, ["a", "b", "c"], top_k=2)
    a, b, c = report["classes"]
    assert (a.precision, a.recall, a.support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    assert (b.precision, b.recall) == (pytest.approx(1 / 2), pytest.approx(1 / 2))
    assert (c.precision, c.recall, c.f1) == (pytest.approx(3 / 4), pytest.approx(3 / 4), pytest.approx(3 / 4))
    assert report["accuracy"] == pytest.approx(6 / 9)
    assert inspect.most_confused(counts, ["a", "b", "c"], n=2) == [("a", "b", 1), ("b", "c", 1)]
    figure = inspect.plot_confusion_matrix(counts, ["a", "b", "c"])
    assert "accuracy 0.667" in figure.axes[0].get_title()


def test_model_and_data_shortcuts(square_model, tmp_path):
    model, _ = square_model
    x, y, _ = squares(40, 7)
    by_hand = inspect.confusion_matrix(y, model.predict(x))
    assert np.array_equal(inspect.confusion_matrix(model, (x, y)), by_hand) and by_hand.sum() == 40
    many, labels, _ = squares(300, 8)  # the shortcuts' own pass runs in larger batches: the same outputs
    _, kept, outputs = inspect.confusion.predictions(model, (many, labels))
    assert np.array_equal(kept, labels) and np.allclose(outputs, model.predict(many), atol=1e-6)
    figure = inspect.show_top_losses(model, (x, y), class_names=["empty", "square"], n=4)
    assert figure.axes[0].get_title().startswith("true ")
    roc = inspect.plot_roc(y, model.predict(x)[:, 1], path=tmp_path / "roc.png")
    assert roc.axes[0].get_legend().get_texts()[0].get_text().startswith("AUC ")


def test_top_losses_threshold_sweep_pearson_and_roc_match_numpy(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    scores = np.clip(truth * 0.3 + rng.random(200) * 0.7, 0, 1)
    assert inspect.pearson(truth, scores) == pytest.approx(np.corrcoef(truth, scores)[0, 1])
    sweep = inspect.threshold_sweep(truth, scores)
    best = max(sweep["rows"], key=lambda row: row["accuracy"])
    assert sweep["best_accuracy"] == best["accuracy"] == pytest.approx(((scores > best["threshold"]) == truth).mean())
    row = next(r for r in sweep["rows"] if r["threshold"] == 0.5)
    predicted = scores > 0.5
    assert row["precision"] == pytest.approx((predicted & (truth == 1)).sum() / predicted.sum())
    roc = inspect.roc_curve(truth, scores)
    positives, negatives = scores[truth == 1], scores[truth == 0]
    rank_auc = ((positives[:, None] > negatives[None]).sum() + 0.5 * (positives[:, None] == negatives[None]).sum()) / (
        len(positives) * len(negatives)
    )
    assert roc["auc"] == pytest.approx(rank_auc)  # the Mann-Whitney statistic
    probabilities = np.stack([1 - scores, scores], axis=1)
    worst = inspect.top_losses(probabilities, truth, n=3)
    losses = -np.log(np.clip(probabilities[np.arange(200), truth], 1e-7, 1))
    assert [index for index, _ in worst] == list(np.argsort(-losses, kind="stable")[:3])
    images = rng.integers(0, 255, (200, 8, 8), dtype=np.uint8)
    figure = inspect.show_top_losses(images, probabilities, truth, ["no", "yes"], n=3, path=tmp_path / "worst.png")
    assert figure.axes[0].get_title().startswith(f"true {['no', 'yes'][truth[worst[0][0]]]}")


def test_show_grad_cam_saves_a_titled_overlay(square_model, tmp_path):
    model, _ = square_model
    image = squares(2, 5)[0][1]
    figure = inspect.show_grad_cam(model, image, class_names=["empty", "square"], path=tmp_path / "cam.png")
    assert figure.axes[0].get_title().startswith("Grad-CAM for 'square'")
    assert (tmp_path / "cam.png").stat().st_size > 1000
    torch.testing.assert_close(torch.tensor(1.0), torch.tensor(float(figure.axes[0].images[1].get_array().max())))
