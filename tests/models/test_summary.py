import pytest

import hubel
from helpers import fashion_model
from hubel import layers as L
from hubel.models.summary import readable_bytes, render_summary, summarize


def test_summary_rows_are_data_with_keras_counts_and_macs():
    summary = summarize(fashion_model())
    assert [row.name for row in summary.rows][:2] == ["conv2d", "max_pooling2d"]
    assert summary.total_params == 243_786 and summary.non_trainable_params == 0
    # MACs of a conv layer: F·F·D_in·H_out·W_out·D_out
    assert summary.rows[0].macs == 3 * 3 * 1 * 26 * 26 * 64
    assert summary.rows[2].macs == 3 * 3 * 64 * 11 * 11 * 64
    assert summary.rows[5].macs == 1600 * 128 and summary.rows[1].macs == 0
    assert summary.macs == sum(row.macs for row in summary.rows) == 5_056_000
    assert summary.rows[0].output_bytes == 26 * 26 * 64 * 4
    assert summary.param_bytes == 243_786 * 4
    assert summary.to_dict()["rows"][0]["output_shape"] == (None, 26, 26, 64)


def test_summary_prints_keras_table_and_footer_one_line_at_a_time():
    lines = []
    fashion_model().summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert lines[0] == 'Model: "sequential"'
    assert all("\n" not in line for line in lines)
    for expected in (
        "Layer (type)",
        "Output Shape",
        "Param #",
        "MACs",
        "conv2d (Conv2D)",
        "(None, 26, 26, 64)",
        "max_pooling2d_1 (MaxPooling2D)",
        "(None, 1600)",
        "204,928",
        " Total params: 243,786 (952.29 KB)",
        " Trainable params: 243,786 (952.29 KB)",
        " Non-trainable params: 0 (0.00 B)",
        " MACs per example: 5,056,000 (5.06 M)",
        " Parameter memory: 0.93 MB",
    ):
        assert expected in text, expected
    assert "Test-time augmentation" not in text  # Keras's footer, unless the model has hubel's flips


def test_summary_says_when_predict_averages_mirror_images():
    model = hubel.Sequential([L.Conv2D(4, 3, input_shape=(8, 8, 3)), L.Flatten(), L.Dense(2)])
    model.test_time_augmentation = "flip"
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[-1] == " Test-time augmentation: flip (predict and evaluate average each image with its mirror image)"
    assert summarize(model).to_dict()["test_time_augmentation"] == "flip"


def test_summary_counts_frozen_and_batchnorm_weights_as_non_trainable():
    model = hubel.Sequential([L.Conv2D(8, 3, input_shape=(8, 8, 3)), L.BatchNormalization(), L.Flatten(), L.Dense(2)])
    model.layers[0].trainable = False
    summary = summarize(model)
    assert summary.non_trainable_params == 224 + 16  # frozen conv + BN moving mean and variance
    assert " Non-trainable params: 240 " in render_summary(summary)


def test_readable_bytes_uses_powers_of_1024_like_keras():
    assert readable_bytes(1023) == "1023.00 B"
    assert readable_bytes(2**20) == "1.00 MB"


def test_show_trainable_adds_keras_trainable_column():
    model = hubel.Sequential([L.Input((8, 8, 1)), L.Conv2D(4, 3), L.MaxPooling2D(), L.Flatten(), L.Dense(2)])
    model.layers[0].trainable = False
    lines = []
    model.summary(print_fn=lines.append, show_trainable=True)
    assert "Trainable" in lines[2]  # the header row, after the model name and the top rule
    marks = {line.split()[1]: line.rstrip(" │").split()[-1] for line in lines if line.startswith("│ ")}
    assert marks == {"conv2d": "N", "max_pooling2d": "-", "flatten": "-", "dense": "Y"}  # Keras's Y / N / -
    with pytest.raises(hubel.ConfigError, match="expand_nested=True is not supported"):
        model.summary(expand_nested=True)
