import numpy as np
import pytest
from PIL import Image

from hubel.data import image_folder
from hubel.errors import DataError
from hubel.inspect import show_images


def test_show_images_labels_a_grid_and_saves_a_png(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (12, 28, 28), dtype=np.uint8)
    y = np.arange(12) % 3
    figure = show_images(x, y, ["zero", "one", "two"], n=7, columns=4, path=tmp_path / "grid.png")
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert titles == ["zero", "one", "two", "zero", "one", "two", "zero"]
    assert len(figure.axes) == 8  # 2 rows of 4, the last one empty
    with Image.open(tmp_path / "grid.png") as png:
        assert png.width > 400 and png.height > 300
    # placing the titles measured no ticks: a picture's axes keep the one tick matplotlib makes at the start
    assert all(len(axis.xaxis.majorTicks) + len(axis.yaxis.majorTicks) <= 2 for axis in figure.axes)


def test_show_images_takes_one_hot_labels_floats_and_folder_datasets(tmp_path):
    floats = np.random.default_rng(1).random((4, 8, 8, 3))
    one_hot = np.eye(2)[[1, 0, 1, 1]]
    assert [a.get_title() for a in show_images(floats, one_hot, ["cat", "dog"]).axes] == ["dog", "cat", "dog", "dog"]
    for index, name in enumerate(["ants", "bees"]):
        (tmp_path / name).mkdir()
        Image.new("RGB", (10, 10), (index * 200, 0, 0)).save(tmp_path / name / "a.png")
    dataset = image_folder(tmp_path, (8, 8), shuffle=False, verbose=False)
    assert [a.get_title() for a in show_images(dataset).axes] == ["ants", "bees"]


def test_show_images_rejects_what_is_not_a_batch_of_images():
    with pytest.raises(DataError, match=r"expected images shaped \(N, H, W\) or \(N, H, W, C\)"):
        show_images(np.zeros((5, 5)))
    with pytest.raises(DataError, match="expected 1, 3 or 4 channels last"):
        show_images(np.zeros((2, 3, 8, 8)))
