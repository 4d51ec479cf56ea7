import gzip
import http.server
import pickle
import struct
import tarfile
import threading
from functools import partial

import numpy as np
import pytest

from helpers import SHARED_DATA
from hubel import datasets
from hubel.data import datasets as builtin
from hubel.data.fetch import DownloadError, download, file_digest
from hubel.errors import DataError, UnknownNameError


@pytest.fixture(scope="module")
def cifar10():
    return datasets.load("cifar10")


def test_mnist_from_the_package_file():
    (x_train, y_train), (x_test, y_test) = datasets.load("mnist")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.shape == (60000,) and y_test.shape == (10000,)
    assert np.bincount(y_train).tolist()[:3] == [5923, 6742, 5958]  # the official MNIST class counts
    assert np.bincount(y_test).tolist()[:3] == [980, 1135, 1032]
    assert x_train.max() == 255 and 30 < x_train.mean() < 40


def test_fashion_mnist_from_the_debian_package():
    (x_train, y_train), (x_test, y_test) = datasets.load("fashion_mnist")
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    assert datasets.info("fashion_mnist").class_names[9] == "Ankle boot"


def test_cifar10_from_the_shared_npz_shaped_like_keras(cifar10):
    (x_train, y_train), (x_test, y_test) = cifar10
    assert x_train.shape == (50000, 32, 32, 3) and x_test.shape == (10000, 32, 32, 3)
    assert y_train.shape == (50000, 1) and y_test.shape == (10000, 1)  # Keras returns (N, 1) for CIFAR
    assert np.bincount(y_train.ravel()).tolist() == [5000] * 10
    assert np.bincount(y_test.ravel()).tolist() == [1000] * 10


def test_cifar10_second_load_reads_the_decoded_cache(cifar10, monkeypatch):
    cached = [path for path in (builtin.cache_dir() / "datasets").iterdir() if path.name.startswith("cifar10-")]
    assert len(cached) == 1
    reads = []
    monkeypatch.setattr(builtin, "_npz_arrays", lambda path: reads.append(path))
    (x_train, _), _ = datasets.load("cifar10")
    assert reads == []  # the uncompressed cache, not the LZMA-compressed source
    assert np.array_equal(x_train[:5], cifar10[0][0][:5])


def cifar_records(x, y):
    """The official binary layout: per image, one label byte then the R, G and B planes."""
    planes = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
    return np.concatenate([y.reshape(-1, 1), planes], axis=1).astype(np.uint8).tobytes()


def write_cifar_binary(folder, cifar10):
    (x_train, y_train), (x_test, y_test) = cifar10
    folder.mkdir()
    for index in range(5):
        part = slice(index * 10000, (index + 1) * 10000)
        (folder / f"data_batch_{index + 1}.bin").write_bytes(cifar_records(x_train[part], y_train[part]))
    (folder / "test_batch.bin").write_bytes(cifar_records(x_test, y_test))


def write_cifar_python(folder, cifar10):
    (x_train, y_train), (x_test, y_test) = cifar10
    folder.mkdir()

    def batch(x, y):
        data = x.transpose(0, 3, 1, 2).reshape(len(x), -1)
        return pickle.dumps({b"batch_label": b"batch", b"labels": y.ravel().tolist(), b"data": data}, protocol=2)

    for index in range(5):
        part = slice(index * 10000, (index + 1) * 10000)
        (folder / f"data_batch_{index + 1}").write_bytes(batch(x_train[part], y_train[part]))
    (folder / "test_batch").write_bytes(batch(x_test, y_test))


@pytest.mark.parametrize("layout", ["cifar-10-batches-bin", "cifar-10-batches-py", "cifar-10-python.tar.gz"])
def test_cifar10_official_layouts_give_the_same_arrays(tmp_path, monkeypatch, cifar10, layout):
    monkeypatch.setenv("HUBEL_DATA_DIR", str(tmp_path))
    if layout == "cifar-10-batches-bin":
        write_cifar_binary(tmp_path / layout, cifar10)
    else:
        write_cifar_python(tmp_path / "cifar-10-batches-py", cifar10)
        if layout.endswith(".tar.gz"):
            with tarfile.open(tmp_path / layout, "w:gz", compresslevel=1) as tar:
                tar.add(tmp_path / "cifar-10-batches-py", arcname="cifar-10-batches-py")
            for path in (tmp_path / "cifar-10-batches-py").iterdir():
                path.unlink()
            (tmp_path / "cifar-10-batches-py").rmdir()
    (x_train, y_train), (x_test, y_test) = datasets.load("cifar10")
    assert np.array_equal(x_train, cifar10[0][0]) and np.array_equal(y_train, cifar10[0][1])
    assert np.array_equal(x_test, cifar10[1][0]) and np.array_equal(y_test, cifar10[1][1])


def test_cifar10_python_layout_refuses_a_malicious_pickle(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload()}, protocol=2))
    monkeypatch.setenv("HUBEL_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"refusing to load (__builtin__|builtins)\.print"):
        datasets.load("cifar10")


def test_missing_data_names_every_place_looked_and_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBEL_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as error:
        datasets.load("cifar10")
    message = str(error.value)
    assert message.startswith("CIFAR-10 not found. Looked in: ")
    for place in ("cifar10/cifar10.npz", "cifar-10-batches-bin", "cifar-10-batches-py", "cifar-10-python.tar.gz"):
        assert f"{tmp_path}/{place} (not found)" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (HUBEL_OFFLINE is set)" in message
    assert f"curl -L --create-dirs -o {tmp_path}/cifar-10-python.tar.gz" in message
    assert "\n" not in message


def test_fashion_mnist_missing_says_apt_get(tmp_path, monkeypatch):
    monkeypatch.setenv("HUBEL_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(builtin, "_FASHION_DEBIAN", tmp_path / "nowhere")
    with pytest.raises(
        DataError, match=r"Looked in: .*nowhere/train-images-idx3-ubyte.gz.*apt-get install dataset-fashion"
    ):
        datasets.load("fashion_mnist")


def test_fashion_mnist_files_in_the_data_dir_come_first(tmp_path, monkeypatch):
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for stem, shape in zip(builtin._IDX_FILES, [(60000, 28, 28), (60000,), (10000, 28, 28), (10000,)], strict=True):
        values = rng.integers(0, 10, size=shape, dtype=np.uint8)
        header = struct.pack(f">BBBB{len(shape)}I", 0, 0, 8, len(shape), *shape)
        (folder / f"{stem}.gz").write_bytes(gzip.compress(header + values.tobytes(), compresslevel=1))
        if stem.startswith("t10k-labels"):
            expected = values
    monkeypatch.setenv("HUBEL_DATA_DIR", str(tmp_path))
    _, (_, y_test) = datasets.load("fashion_mnist")
    assert np.array_equal(y_test, expected)


def test_truncated_idx_file_is_a_clear_error(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 10) + bytes(4))
    with pytest.raises(DataError, match="holds 4 values, its header says 10: truncated"):
        builtin.read_idx(path)


def test_digits_are_scikit_learns_read_without_importing_it():
    from sklearn.datasets import load_digits  # the oracle

    bunch = load_digits()
    (x_train, y_train), (x_test, y_test) = datasets.load("digits")
    images, labels = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    expected = np.rint(bunch.images * (255 / 16)).astype(np.uint8)
    # the same 1,797 images and labels, in the split's order: match each by its pixels and label
    order = np.lexsort(np.vstack([labels, images.reshape(len(images), -1).T]))
    reference = np.lexsort(np.vstack([bunch.target, expected.reshape(len(expected), -1).T]))
    assert np.array_equal(images[order], expected[reference])
    assert np.array_equal(labels[order], bunch.target[reference].astype(np.uint8))


def test_digits_split_is_fixed_and_stratified():
    (x_train, y_train), (x_test, y_test) = datasets.load("digits")
    assert x_train.shape == (1442, 8, 8) and x_test.shape == (355, 8, 8) and x_train.max() == 255
    share = np.bincount(y_test) / (np.bincount(y_test) + np.bincount(y_train))
    assert np.all((share > 0.18) & (share < 0.21))
    assert np.array_equal(datasets.load("digits")[1][1], y_test)  # the same split every time


def test_info_and_listing():
    assert datasets.list_datasets() == ["cifar10", "digits", "fashion_mnist", "imdb", "mnist"]
    assert datasets.info("mnist").num_classes == 10 and datasets.info("cifar10").label_shape == (1,)
    with pytest.raises(UnknownNameError, match="Did you mean 'fashion_mnist'"):
        datasets.info("fashion")


@pytest.fixture
def file_server(tmp_path):
    """A static file server on the loopback interface, for the download path."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_checks_the_checksum_and_leaves_nothing_half_written(file_server, tmp_path_factory, monkeypatch):
    served, url = file_server
    (served / "data.bin").write_bytes(b"x" * 5000)
    (served / "data.gz").write_bytes(gzip.compress(b"y" * 100))
    target = tmp_path_factory.mktemp("downloads")
    monkeypatch.setenv("HUBEL_OFFLINE", "0")
    digest = file_digest(served / "data.bin")
    assert download(f"{url}/data.bin", target / "data.bin", digest).read_bytes() == b"x" * 5000
    gunzipped = file_digest(served / "data.gz", gunzip=True)
    assert download(f"{url}/data.gz", target / "data.gz", gunzipped, gunzip=True).exists()
    with pytest.raises(DownloadError, match="arrived damaged or changed"):
        download(f"{url}/data.bin", target / "bad.bin", "0" * 64)
    with pytest.raises(DownloadError, match=r"could not download .*missing\.bin"):
        download(f"{url}/missing.bin", target / "missing.bin", digest)
    assert sorted(path.name for path in target.iterdir()) == ["data.bin", "data.gz"]
    monkeypatch.setenv("HUBEL_OFFLINE", "1")
    with pytest.raises(DownloadError, match="HUBEL_OFFLINE is set"):
        download(f"{url}/data.bin", target / "again.bin", digest)


def test_a_dataset_downloads_when_it_is_nowhere_else(file_server, tmp_path_factory, monkeypatch):
    served, url = file_server
    data = tmp_path_factory.mktemp("data")
    with tarfile.open(served / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(SHARED_DATA / "cifar10" / "README.md", arcname="not-cifar/README.md")
    monkeypatch.setenv("HUBEL_DATA_DIR", str(data))
    monkeypatch.setenv("HUBEL_OFFLINE", "0")
    monkeypatch.setattr(builtin, "_CIFAR_PYTHON_URL", f"{url}/cifar-10-python.tar.gz")
    monkeypatch.setattr(builtin, "_CIFAR_PYTHON_MD5", file_digest(served / "cifar-10-python.tar.gz", "md5"))
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: data_batch_1 is missing"):
        datasets.load("cifar10")  # the archive arrived intact (it is in the data dir) but holds no batches
    assert (data / "cifar-10-python.tar.gz").exists()
