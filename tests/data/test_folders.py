import io
import os
import time

import numpy as np
import pytest
from PIL import Image

from helpers import SHARED_DATA
from hubel.data import image_folder, scan_folder
from hubel.data.cache import ImageCache
from hubel.data.images import DecodeOptions, decode_image
from hubel.errors import ConfigError, DataError


def save(path, image, format=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=format, **kwargs)
    return path


def solid(color, size=(40, 30), mode="RGB"):
    return Image.new(mode, size, color)


def jpeg_bytes(image, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def make_classes(root, counts, size=(40, 30)):
    rng = np.random.default_rng(0)
    for name, count in counts.items():
        for index in range(count):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            save(root / name / f"{name}_{index:03d}.png", Image.fromarray(pixels))


def test_real_photos_with_train_and_validation_folders():
    train, validation = image_folder(SHARED_DATA / "cats_and_dogs", subset="both", verbose=False)
    assert (train.num_examples, validation.num_examples) == (800, 400)
    assert train.class_names == ["cats", "dogs"] and train.class_indices == {"cats": 0, "dogs": 1}
    x, y = next(iter(train))
    assert x.shape == (32, 160, 160, 3) and x.dtype == np.uint8 and set(y) <= {0, 1}
    assert len(train) == 25 and np.bincount(validation.labels).tolist() == [200, 200]


def test_automatic_split_is_stratified_persisted_and_stable_when_files_are_added(tmp_path):
    root = tmp_path / "photos"
    make_classes(root, {"a": 30, "b": 10})
    split_file = tmp_path / "split.json"
    train, val = image_folder(
        root, (8, 8), validation_split=0.2, subset="both", seed=3, split_file=split_file, verbose=False
    )
    assert np.bincount(val.labels).tolist() == [6, 2] and np.bincount(train.labels).tolist() == [24, 8]
    assert not set(train.files) & set(val.files)
    assert split_file.exists() and not (root / "hubel-split.json").exists()  # never writes into the data folder
    make_classes(tmp_path / "more", {"a": 40, "b": 40})
    for name, count in (("a", 10), ("b", 10)):
        for index in range(count):
            source = tmp_path / "more" / name / f"{name}_{index + 30:03d}.png"
            os.replace(source, root / name / f"{name}_{index + 30:03d}.png")
    train2, val2 = image_folder(
        root, (8, 8), validation_split=0.2, subset="both", seed=3, split_file=split_file, verbose=False
    )
    assert set(val.files) <= set(val2.files) and set(train.files) <= set(train2.files)  # nobody moved
    assert np.bincount(val2.labels).tolist() == [8, 4]  # new files keep each class at 20%


def test_the_same_split_on_another_machine_without_the_split_file(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    make_classes(root, {"a": 20, "b": 20})
    _, first = image_folder(root, (8, 8), validation_split=0.25, subset="both", seed=1, verbose=False)
    monkeypatch.setenv("HUBEL_CACHE_DIR", str(tmp_path / "another-machine"))
    _, second = image_folder(root, (8, 8), validation_split=0.25, subset="both", seed=1, verbose=False)
    assert first.files == second.files
    _, other_seed = image_folder(root, (8, 8), validation_split=0.25, subset="both", seed=2, verbose=False)
    assert other_seed.files != first.files


def test_split_folders_are_detected(tmp_path):
    make_classes(tmp_path / "train", {"x": 4, "y": 3})
    make_classes(tmp_path / "val", {"x": 2, "y": 2})
    make_classes(tmp_path / "test", {"x": 1, "y": 1})
    train, val = image_folder(tmp_path, (8, 8), subset="both", verbose=False)
    test = image_folder(tmp_path, (8, 8), subset="test", verbose=False)
    assert (train.num_examples, val.num_examples, test.num_examples) == (7, 4, 2)
    assert test.files == ["test/x/x_000.png", "test/y/y_000.png"]


def test_batches_shuffle_per_epoch_reproducibly_and_cover_every_image(tmp_path):
    make_classes(tmp_path, {"a": 9, "b": 8})
    dataset = image_folder(tmp_path, (8, 8), batch_size=5, seed=4, verbose=False)
    again = image_folder(tmp_path, (8, 8), batch_size=5, seed=4, verbose=False)
    epochs = [[y for _, y in dataset] for _ in range(2)]
    assert len(dataset) == 4 and [len(y) for y in epochs[0]] == [5, 5, 5, 2]
    assert sorted(np.concatenate(epochs[0]).tolist()) == [0] * 9 + [1] * 8
    assert not all(np.array_equal(a, b) for a, b in zip(*epochs, strict=True))
    assert all(np.array_equal(a, b) for a, b in zip(epochs[0], [y for _, y in again], strict=True))
    x_all, y_all = dataset.numpy()
    assert x_all.shape == (17, 8, 8, 3) and y_all.tolist() == [0] * 9 + [1] * 8


def test_label_modes(tmp_path):
    make_classes(tmp_path, {"a": 2, "b": 2})
    _, categorical = next(iter(image_folder(tmp_path, (8, 8), label_mode="categorical", shuffle=False, verbose=False)))
    _, binary = next(iter(image_folder(tmp_path, (8, 8), label_mode="binary", shuffle=False, verbose=False)))
    assert categorical.tolist() == [[1, 0], [1, 0], [0, 1], [0, 1]]
    assert binary.ravel().tolist() == [0, 0, 1, 1] and binary.dtype == np.float32
    make_classes(tmp_path, {"c": 1})
    with pytest.raises(ConfigError, match="label_mode='binary' needs exactly 2 classes"):
        image_folder(tmp_path, (8, 8), label_mode="binary", verbose=False)


def test_cache_is_reused_and_invalidated_when_a_file_changes(tmp_path):
    root = tmp_path / "data"
    make_classes(root, {"a": 3, "b": 3})
    options = DecodeOptions((8, 8))
    cache = ImageCache(root, options)
    files = sorted(str(path.relative_to(root)) for path in root.rglob("*.png"))
    first = cache.load(files)
    assert first.decoded == 6 and (first.rows >= 0).all()
    assert cache.load(files).decoded == 0
    changed = root / "a" / "a_000.png"
    save(changed, solid((255, 0, 0)))
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = cache.load(files)
    assert third.decoded == 1
    row = third.rows[files.index("a/a_000.png")]
    assert (third.pixels[row][..., 0] == 255).all() and (third.pixels[row][..., 1] == 0).all()
    assert third.pixels.shape[0] == 6  # a changed file reuses its row


def test_parallel_first_pass_equals_serial_decoding(tmp_path):
    make_classes(tmp_path / "data", {"a": 40, "b": 40})
    files = sorted(str(path.relative_to(tmp_path / "data")) for path in (tmp_path / "data").rglob("*.png"))
    serial = ImageCache(tmp_path / "data", DecodeOptions((12, 12)), tmp_path / "serial").load(files, workers=1)
    parallel = ImageCache(tmp_path / "data", DecodeOptions((12, 12)), tmp_path / "parallel").load(files, workers=2)
    assert np.array_equal(np.asarray(serial.pixels)[serial.rows], np.asarray(parallel.pixels)[parallel.rows])
    # the rows the workers wrote are the images' pixels, each in its own row
    decoded = [decode_image(tmp_path / "data" / relative, DecodeOptions((12, 12))) for relative in files]
    assert np.array_equal(np.asarray(parallel.pixels)[parallel.rows], np.stack(decoded))


def write_bad_corpus(root):
    """Every kind of file that must be skipped, next to good images in odd formats."""
    good = root / "good"
    save(good / "rgb.jpg", solid((10, 200, 30)))
    save(good / "cmyk.jpg", solid((0, 0, 0, 0), mode="CMYK"))
    save(good / "gray16.png", Image.fromarray(np.full((30, 40), 65535, dtype=np.uint16)))
    save(good / "palette.gif", solid((255, 0, 0)).convert("P"))
    transparent = Image.new("P", (40, 30), 0)
    transparent.putpalette([0, 0, 0] * 256)
    save(good / "palette_transparent.png", transparent, transparency=0)
    save(good / "la.png", Image.new("LA", (40, 30), (0, 0)))
    save(good / "rgba.png", Image.new("RGBA", (40, 30), (0, 0, 0, 0)))
    save(good / "onebit.bmp", Image.new("1", (40, 30), 1))
    save(good / "really_png.jpg", solid((1, 2, 3)), format="PNG")
    bad = root / "bad"
    save(bad / "fine.png", solid((5, 5, 5)))
    kinds = {
        "empty.jpg": b"",
        "truncated.jpg": jpeg_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))[:400],
        "text.jpg": b"this is not a picture\n",
        "page.png": b"<html><body>404</body></html>",
        "garbage.webp": os.urandom(300),
        "header_only.gif": b"GIF89a",
        "truncated.png": _png_bytes()[:60],
        "truncated.bmp": _bmp_bytes()[:100],
    }
    for name, data in kinds.items():
        (bad / name).write_bytes(data)
    save(bad / "huge.png", Image.new("L", (300, 300)))  # over the max_pixels the test sets
    os.symlink(bad / "gone.jpg", bad / "broken_link.jpg")
    for junk in (".DS_Store", "Thumbs.db", "desktop.ini", "._fine.png"):
        (bad / junk).write_bytes(b"\x00\x01junk")
    (bad / "notes.txt").write_text("labels were checked by hand")
    (bad / "README").write_text("no extension")
    hidden = bad / ".ipynb_checkpoints"
    save(hidden / "copy.png", solid((9, 9, 9)))
    return 9, 1, 16  # good images, usable bad-folder images, skipped files


def _png_bytes():
    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 50).save(buffer, "PNG")
    return buffer.getvalue()


def _bmp_bytes():
    buffer = io.BytesIO()
    solid((1, 1, 1), (64, 64)).save(buffer, "BMP")
    return buffer.getvalue()


def test_bad_file_corpus_never_crashes_and_every_file_is_reported(tmp_path, capsys):
    good_count, usable_bad, skipped_count = write_bad_corpus(tmp_path / "corpus")
    dataset = image_folder(tmp_path / "corpus", (16, 16), shuffle=False, max_pixels=50_000)
    assert dataset.num_examples == good_count + usable_bad
    reasons = {item.path.split("/")[-1]: item.reason for item in dataset.skipped}
    assert len(dataset.skipped) == skipped_count, reasons
    assert reasons["empty.jpg"] == "empty file"
    assert reasons["truncated.jpg"].startswith(("truncated", "damaged"))
    assert reasons["text.jpg"] == reasons["page.png"] == "not an image Pillow can read"
    assert reasons["huge.png"].startswith("refused as a decompression bomb")
    assert reasons["broken_link.jpg"] == "broken link"
    assert reasons[".DS_Store"] == reasons["Thumbs.db"] == reasons["._fine.png"] == "hidden or system file"
    assert reasons["notes.txt"] == "not an image file name (.txt)"
    assert "copy.png" not in reasons and all("ipynb" not in f for f in dataset.files)
    err = capsys.readouterr().err
    assert "Skipped 16 files" in err and "skipped.txt" in err
    report = err.split("the list is in ")[1].rstrip(".\n")
    assert len(open(report).read().splitlines()) == skipped_count
    pixels = dict(zip(dataset.files, dataset.numpy()[0], strict=True))
    assert (pixels["good/rgba.png"] == 255).all()  # transparent pixels composited over white
    assert (pixels["good/gray16.png"] == 255).all()  # 16-bit grayscale scaled to 8 bits
    assert pixels["good/rgb.jpg"].shape == (16, 16, 3)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was rotated: display needs a 90° clockwise turn
    path = save(tmp_path / "photo.jpg", image, exif=exif.tobytes(), quality=95)
    pixels = decode_image(path, DecodeOptions((40, 20)))  # (height, width): portrait after rotation
    assert pixels.shape == (40, 20, 3)
    assert pixels[2, 10, 0] > 200 and pixels[-3, 10, 2] > 200  # red on top, blue at the bottom


def test_plain_jpegs_take_the_fast_decoder_and_match_pillows_pixels(tmp_path, monkeypatch):
    import hubel.data.images as images

    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((500, 375), Image.BICUBIC)
    path = save(tmp_path / "camera.jpg", photo, quality=90)
    calls = []
    decode = images.simplejpeg.decode_jpeg
    monkeypatch.setattr(images.simplejpeg, "decode_jpeg", lambda *a, **k: calls.append(k) or decode(*a, **k))
    grey = save(tmp_path / "grey.jpg", photo.convert("L"), quality=90)
    decoded = {}
    for source, options in ((path, DecodeOptions((160, 160))), (grey, DecodeOptions((96, 128)))):
        fast = decoded[source] = decode_image(source, options)
        with monkeypatch.context() as pillow_only:
            pillow_only.setattr(images, "simplejpeg", None)
            slow = decode_image(source, options)
        assert fast.shape == slow.shape == (*options.image_size, options.channels)
        difference = np.abs(fast.astype(int) - slow.astype(int))
        if options.image_size == (160, 160):  # both decode 500x375 at 1/2 scale: the same pixels
            assert difference.max() <= 2
        else:  # simplejpeg may also pick libjpeg-turbo's 3/8 scale (188x141), where Pillow's draft takes 1/2
            assert difference.mean() < 2, difference.mean()
    assert [call["min_height"] for call in calls] == [160, 96]  # decoded at a reduced scale, not full size
    assert decode_image(grey, DecodeOptions((96, 128), color_mode="grayscale")).shape == (96, 128, 1)
    assert len(calls) == 2  # grayscale output is Pillow's conversion
    exif = Image.Exif()
    exif[0x0110], exif[0x0112] = "Camera", 1  # a camera's EXIF, upright
    upright = save(tmp_path / "upright.jpg", photo, exif=exif.tobytes(), quality=90)
    assert np.array_equal(decode_image(upright, DecodeOptions((160, 160))), decoded[path]) and len(calls) == 3
    exif[0x0112] = 6  # turned: Pillow applies the rotation
    turned = save(tmp_path / "turned.jpg", photo, exif=exif.tobytes(), quality=90)
    assert decode_image(turned, DecodeOptions((160, 160))).shape == (160, 160, 3) and len(calls) == 3
    save(tmp_path / "cmyk.jpg", photo.convert("CMYK"), quality=90)
    png_named_jpg = tmp_path / "drawing.jpg"
    photo.save(png_named_jpg, format="PNG")
    for other in (tmp_path / "cmyk.jpg", png_named_jpg):
        assert decode_image(other, DecodeOptions((160, 160))).shape == (160, 160, 3)
    with pytest.raises(images.UnreadableImage, match="decompression bomb"):
        decode_image(path, DecodeOptions((160, 160), max_pixels=100_000))
    assert len(calls) == 3  # none of these went to simplejpeg
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(path.read_bytes()[:2000])  # simplejpeg declines; Pillow names what is wrong
    with pytest.raises(images.UnreadableImage, match=r"truncated|damaged"):
        decode_image(damaged, DecodeOptions((160, 160)))


def test_grayscale_crop_and_pad_to_aspect_ratio(tmp_path):
    image = Image.new("RGB", (60, 20), (0, 0, 0))
    image.paste((255, 255, 255), (20, 0, 40, 20))  # white centre third
    path = save(tmp_path / "wide.png", image)
    cropped = decode_image(path, DecodeOptions((10, 10), color_mode="grayscale", crop_to_aspect_ratio=True))
    assert cropped.shape == (10, 10, 1) and cropped.min() > 240  # only the white centre remains
    padded = decode_image(path, DecodeOptions((12, 12), pad_to_aspect_ratio=True))
    assert padded[0].max() == 0 and padded[6, 6].min() > 200  # black bars above and below


def test_folder_errors_say_what_to_do(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        image_folder(tmp_path / "missing")
    save(tmp_path / "loose" / "a.png", solid((1, 1, 1)))
    with pytest.raises(DataError, match=r"no class folders.*holds 1 images directly: move them into one sub-folder"):
        image_folder(tmp_path / "loose")
    make_classes(tmp_path / "classes", {"a": 2})
    (tmp_path / "classes" / "empty").mkdir()
    with pytest.raises(DataError, match="the class folder 'empty' holds no images"):
        scan_folder(tmp_path / "classes")
    make_classes(tmp_path / "two", {"a": 2, "b": 2})
    with pytest.raises(ConfigError, match=r"no validation images: pass validation_split=0\.2"):
        image_folder(tmp_path / "two", subset="validation", verbose=False)
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        image_folder(tmp_path / "two", validation_split=1.0, subset="both", verbose=False)
    with pytest.raises(ConfigError, match="expected `subset` to be one of"):
        image_folder(tmp_path / "two", subset="train", verbose=False)


def test_an_unwritable_cache_folder_says_how_to_fix_it(tmp_path, monkeypatch):
    make_classes(tmp_path / "data", {"a": 1})
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    monkeypatch.setenv("HUBEL_CACHE_DIR", str(tmp_path / "blocked"))
    with pytest.raises(DataError, match=r"cannot write the image cache in .*Set HUBEL_CACHE_DIR to a writable folder"):
        image_folder(tmp_path / "data", verbose=False)
