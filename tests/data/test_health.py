import json
import shutil

import numpy as np
from PIL import Image

from hubel.cli.main import main
from hubel.data import check


def photo(seed, size=(64, 48)):
    """A smooth random picture (blurred noise), so resizing keeps its look."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def build(root):
    for split_index, (split, per_class) in enumerate((("train", {"cat": 6, "dog": 3}), ("test", {"cat": 2, "dog": 2}))):
        for class_index, (name, count) in enumerate(per_class.items()):
            for index in range(count):
                folder = root / split / name
                folder.mkdir(parents=True, exist_ok=True)
                photo(100 * split_index + 10 * class_index + index).save(folder / f"{index}.png")


def test_check_flags_a_planted_cross_split_duplicate_first(tmp_path):
    build(tmp_path)
    shutil.copy(tmp_path / "train/dog/1.png", tmp_path / "test/dog/leaked.png")  # leakage: same bytes
    resized = Image.open(tmp_path / "train/cat/0.png").resize((80, 60))
    resized.convert("RGB").save(tmp_path / "train/cat/0_again.jpg", quality=85)  # near duplicate, same split
    (tmp_path / "train/cat/broken.png").write_bytes(b"\x89PNG broken")
    report = check(tmp_path, progress=False)
    assert report.counts == {"training": {"cat": 7, "dog": 3}, "test": {"cat": 2, "dog": 3}}
    first = report.duplicates[0]
    assert first.kind == "exact" and first.leaks_into_evaluation
    assert set(first.files) == {"train/dog/1.png", "test/dog/leaked.png"}
    assert len(report.leaks) == 1
    near = [group for group in report.duplicates if group.kind == "near"]
    assert [set(group.files) for group in near] == [{"train/cat/0.png", "train/cat/0_again.jpg"}]
    assert [item.path for item in report.unreadable] == ["train/cat/broken.png"]
    assert report.most_common_size == (64, 48) and report.modes == {"RGB": 15}
    assert report.class_weights == {"cat": 10 / (2 * 7), "dog": 10 / (2 * 3)}
    text = str(report)
    assert text.index("LEAKAGE") < text.index("Image sizes")
    assert "class_weight='balanced'" in text


def test_data_check_command_prints_json_for_machines(tmp_path, capsys):
    build(tmp_path)
    assert main(["data", "check", str(tmp_path), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["class_names"] == ["cat", "dog"] and document["leaks"] == 0
    assert document["counts"]["test"] == {"cat": 2, "dog": 2}


def test_data_check_command_on_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "nope")]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("no such folder. Pass a folder holding one sub-folder of images per class.")
    )
