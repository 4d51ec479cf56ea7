"""Decoding one image file into a uint8 array of a fixed size, or a one-line reason why not.

Pillow reads any format it knows; EXIF orientation is applied; every mode (L, LA, P with
transparency, RGBA, CMYK, I;16, 1-bit, ...) becomes RGB (or L for color_mode="grayscale"),
transparent pixels composited over white. JPEGs are decoded at the smallest DCT scale still
larger than the target (libjpeg-turbo's scaled decoding: Pillow's draft mode, or simplejpeg,
which skips Pillow's per-image overhead, for the plain JPEGs without an EXIF rotation that
cameras and datasets mostly hold, read as RGB). Bilinear resizing is torch's antialiased uint8
kernel, which matches Pillow's to within one level and ran 2.2x faster (benchmarks/README.md).
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

try:
    import simplejpeg
except ImportError:  # no wheel for this platform: Pillow decodes every JPEG
    simplejpeg = None

__all__ = ["DecodeOptions", "FileFacts", "UnreadableImage", "decode_image", "file_facts", "image_extensions"]

_INTERPOLATIONS = {
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "area": Image.Resampling.BOX,
}


@dataclass(frozen=True)
class DecodeOptions:
    """How files become arrays: the cache is keyed by these."""

    image_size: tuple[int, int] = (160, 160)  # (height, width)
    color_mode: str = "rgb"  # or "grayscale"
    interpolation: str = "bilinear"
    crop_to_aspect_ratio: bool = False
    pad_to_aspect_ratio: bool = False
    max_pixels: int | None = Image.MAX_IMAGE_PIXELS  # larger images are refused as decompression bombs
    draft: bool = True

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    def key(self) -> str:
        height, width = self.image_size
        fit = "crop" if self.crop_to_aspect_ratio else "pad" if self.pad_to_aspect_ratio else "stretch"
        return f"{height}x{width}-{self.color_mode}-{self.interpolation}-{fit}-v2"  # v2: torch's bilinear


class UnreadableImage(Exception):
    """A file that is not a usable image; the message is the reason, for the skip report."""


def image_extensions() -> frozenset[str]:
    """Lower-case file suffixes Pillow can open (.jpg, .png, .webp, ...)."""
    Image.init()
    return frozenset(Image.registered_extensions())


def decode_image(path: Path | io.BytesIO, options: DecodeOptions) -> np.ndarray:
    """(H, W, C) uint8 pixels of `path` (a file, or bytes in a BytesIO) at options.image_size;
    UnreadableImage with the reason otherwise."""
    pixels = _plain_jpeg(path, options)
    if pixels is not None:
        return _resize_bilinear(pixels, options.image_size) if pixels.shape[:2] != options.image_size else pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            previous_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = options.max_pixels
            try:
                with Image.open(path) as image:
                    return _to_array(image, options)
            finally:
                Image.MAX_IMAGE_PIXELS = previous_limit
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UnreadableImage(f"refused as a decompression bomb ({error})") from None
    except UnidentifiedImageError:
        if isinstance(path, io.BytesIO):
            size = path.getbuffer().nbytes
        else:
            size = path.stat().st_size if path.exists() else 0
        raise UnreadableImage("empty file" if size == 0 else "not an image Pillow can read") from None
    except PermissionError:
        raise UnreadableImage("permission denied") from None
    except FileNotFoundError:
        raise UnreadableImage("missing (a broken link, or deleted while reading)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        text = str(error) or type(error).__name__
        raise UnreadableImage(f"damaged: {text}" if "truncated" not in text else f"truncated: {text}") from None


_EXIF_ORIENTATION = 0x0112


def _to_array(image: Image.Image, options: DecodeOptions) -> np.ndarray:
    height, width = options.image_size
    if options.draft and image.format == "JPEG":
        image.draft("RGB" if options.channels == 3 else "L", (width, height))
    image.load()
    image = ImageOps.exif_transpose(image)
    image = _convert(image, options.color_mode)
    image = _fit(image, options)
    if image.size != (width, height) and options.interpolation != "bilinear":
        image = image.resize((width, height), _INTERPOLATIONS[options.interpolation])
    pixels = np.array(image, dtype=np.uint8)
    pixels = pixels[..., None] if pixels.ndim == 2 else pixels
    return _resize_bilinear(pixels, (height, width)) if pixels.shape[:2] != (height, width) else pixels


def _plain_jpeg(source: Path | io.BytesIO, options: DecodeOptions) -> np.ndarray | None:
    """(H, W, 3) pixels from simplejpeg at the smallest scale at least the target's size, for an
    RGB or grayscale JPEG without an EXIF rotation, read as RGB and stretched, without opening it
    in Pillow (whose header read cost a quarter of the decode); None for anything else, and for
    anything simplejpeg declines: Pillow then decodes it, and names what is wrong."""
    if simplejpeg is None or not options.draft or options.channels != 3:  # grayscale: Pillow's luma
        return None  # (simplejpeg's differed by up to 9 levels)
    if options.crop_to_aspect_ratio or options.pad_to_aspect_ratio or options.interpolation != "bilinear":
        return None
    try:
        data = source.getvalue() if isinstance(source, io.BytesIO) else source.read_bytes()
    except OSError:
        return None
    if not data.startswith(b"\xff\xd8"):  # not a JPEG, whatever its name
        return None
    try:
        image_height, image_width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("YCbCr", "RGB", "Gray"):  # CMYK and YCCK: Pillow's conversion
        return None
    if options.max_pixels is not None and image_height * image_width > options.max_pixels:
        return None  # Pillow refuses it as a decompression bomb
    if _exif_orientation(data) != 1:
        return None
    height, width = options.image_size
    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=height, min_width=width)
    except ValueError:
        return None


def _exif_orientation(data: bytes) -> int | None:
    """The EXIF orientation of JPEG bytes, read from the header segments before the image data:
    1 (upright) when no EXIF says otherwise, None when the header cannot be walked cleanly."""
    position = 2  # after the start-of-image marker
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xDA:  # start of scan: every header segment has been seen
            return 1
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xE1 and data[position + 4 : position + 10] == b"Exif\x00\x00":
            exif = Image.Exif()
            try:
                exif.load(data[position + 4 : position + 2 + length])
            except (OSError, SyntaxError, ValueError, EOFError, struct.error):
                return None  # Pillow's own reading names what is wrong with it
            return int(exif.get(_EXIF_ORIENTATION, 1))
        position += 2 + length
    return None


def _resize_bilinear(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, C) uint8 -> (height, width, C) uint8, antialiased when shrinking, as Pillow's BILINEAR.

    torch's uint8 kernel writes straight into an (H, W, C) array through its `out` form: its
    functional form returns (C, H, W), and laying that out as (H, W, C) doubled the cost."""
    height, width = size
    resized = np.empty((height, width, pixels.shape[2]), dtype=np.uint8)
    source = torch.from_numpy(np.ascontiguousarray(pixels)[None]).permute(0, 3, 1, 2)  # (1, C, H, W), channels last
    target = torch.from_numpy(resized[None]).permute(0, 3, 1, 2)
    torch.ops.aten._upsample_bilinear2d_aa.out(source, [height, width], False, out=target)
    return resized


def _convert(image: Image.Image, color_mode: str) -> Image.Image:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") else max(float(values.max()), 1.0)
        image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "1":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    target = "L" if color_mode == "grayscale" else "RGB"
    return image if image.mode == target else image.convert(target)


def _fit(image: Image.Image, options: DecodeOptions) -> Image.Image:
    """Crop (or pad) to the target's aspect ratio first, when asked; otherwise stretch."""
    height, width = options.image_size
    source_width, source_height = image.size
    if options.crop_to_aspect_ratio:
        scale = min(source_width / width, source_height / height)
        crop_width, crop_height = round(width * scale), round(height * scale)
        left, top = (source_width - crop_width) // 2, (source_height - crop_height) // 2
        return image.crop((left, top, left + crop_width, top + crop_height))
    if options.pad_to_aspect_ratio:
        scale = max(source_width / width, source_height / height)
        padded_width, padded_height = round(width * scale), round(height * scale)
        canvas = Image.new(image.mode, (padded_width, padded_height), 0)
        canvas.paste(image, ((padded_width - source_width) // 2, (padded_height - source_height) // 2))
        return canvas
    return image


@dataclass(frozen=True)
class FileFacts:
    """What a file's header says, and a hash of its bytes (for exact duplicates)."""

    width: int
    height: int
    mode: str
    format: str
    sha256: str


def file_facts(path: str) -> FileFacts | str:
    """Header facts of an image file without decoding its pixels, or why it cannot be read."""
    from hubel.data.fetch import file_digest

    try:
        digest = file_digest(Path(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                return FileFacts(width, height, image.mode, image.format or "?", digest)
    except UnidentifiedImageError:
        return "not an image Pillow can read"
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as error:
        return f"damaged: {error}"
