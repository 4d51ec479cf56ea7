"""Decoding one image file into a uint8 array of a fixed size, or a one-line reason why not.

Pillow reads any format it knows; EXIF orientation is applied; every mode (L, LA, P with
transparency, RGBA, CMYK, I;16, 1-bit, ...) becomes RGB (or L for color_mode="grayscale"),
transparent pixels composited over white. JPEGs are decoded in draft mode at the smallest
scale still larger than the target.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

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
        return f"{height}x{width}-{self.color_mode}-{self.interpolation}-{fit}-v1"


class UnreadableImage(Exception):
    """A file that is not a usable image; the message is the reason, for the skip report."""


def image_extensions() -> frozenset[str]:
    """Lower-case file suffixes Pillow can open (.jpg, .png, .webp, ...)."""
    Image.init()
    return frozenset(Image.registered_extensions())


def decode_image(path: Path | io.BytesIO, options: DecodeOptions) -> np.ndarray:
    """(H, W, C) uint8 pixels of `path` (a file, or bytes in a BytesIO) at options.image_size;
    UnreadableImage with the reason otherwise."""
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


def _to_array(image: Image.Image, options: DecodeOptions) -> np.ndarray:
    height, width = options.image_size
    if options.draft and image.format == "JPEG":
        image.draft("RGB" if options.channels == 3 else "L", (width, height))
    image.load()
    image = ImageOps.exif_transpose(image)
    image = _convert(image, options.color_mode)
    image = _fit(image, options)
    if image.size != (width, height):
        image = image.resize((width, height), _INTERPOLATIONS[options.interpolation])
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


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
