"""A frame counter drawn into a video image so that it survives VP8/H.264 and can be read back:
the probe of glass-to-glass latency (`bench/glass_to_glass.py`).

The stamp is one row of `STAMP_BLOCKS` square blocks across the bottom of the image, each black or
white: the 16 bits of the counter (modulo 2^16, most significant first), then the same 16 bits
inverted. A bit is read by comparing the mean luma of its block's centre with that of its inverted
twin, so the reading needs no absolute threshold and survives brightness and contrast changes; a
pair that differs by less than `MIN_CONTRAST` (blurred, overdrawn, or not a stamp at all) makes the
whole stamp unreadable (None). A wrong counter would take drawing dark over a white block *and*
light over its black twin. Blocks are ``width // 32`` pixels (20 at
640x480, 40 at 1280x720): coarse enough for a codec at a few hundred kbit/s to keep.

Pure functions on numpy images, (H, W, 3) uint8 BGR or (H, W) uint8 luma.
"""

from __future__ import annotations

import numpy as np

#: Bits of the counter; the stamp has twice as many blocks (each bit and its inverse).
COUNTER_BITS = 16
STAMP_BLOCKS = 2 * COUNTER_BITS
#: Least difference of mean luma between a bit's block and its inverse for a readable stamp.
MIN_CONTRAST = 60.0


def stamp_height(width: int) -> int:
    """Height of the stamp's band at the bottom of an image `width` pixels wide, pixels."""
    return max(width // STAMP_BLOCKS, 4)


def write_stamp(image: np.ndarray, counter: int) -> np.ndarray:
    """Draw `counter` (modulo 2^16) into the bottom band of `image`, in place; returns `image`.

    Raises:
        ValueError: the image is narrower than `STAMP_BLOCKS` * 4 pixels.
    """
    height, width = image.shape[:2]
    if width < STAMP_BLOCKS * 4:
        raise ValueError(f"an image {width} pixels wide is too narrow for a stamp "
                         f"(at least {STAMP_BLOCKS * 4})")
    block = stamp_height(width)
    value = counter % (1 << COUNTER_BITS)
    bits = [(value >> (COUNTER_BITS - 1 - i)) & 1 for i in range(COUNTER_BITS)]
    for i, bit in enumerate(bits + [1 - b for b in bits]):
        image[height - block:, i * block:(i + 1) * block] = 255 if bit else 0
    return image


def read_stamp(image: np.ndarray) -> int | None:
    """The counter stamped into `image` (modulo 2^16), or None when there is no readable stamp."""
    luma = image if image.ndim == 2 else image[..., :3].mean(axis=2)
    height, width = luma.shape[:2]
    if width < STAMP_BLOCKS * 4:
        return None
    block = stamp_height(width)
    margin = block // 4
    band = luma[height - block + margin:height - margin]
    means = np.array([band[:, i * block + margin:(i + 1) * block - margin].mean()
                      for i in range(STAMP_BLOCKS)])
    difference = means[:COUNTER_BITS] - means[COUNTER_BITS:]
    if np.abs(difference).min() < MIN_CONTRAST:
        return None
    value = 0
    for bit in difference > 0:
        value = (value << 1) | int(bit)
    return value
