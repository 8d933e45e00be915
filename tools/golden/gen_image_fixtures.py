#!/usr/bin/env python3
"""Image fixtures for q3vl's decoder and preprocessing (reference: PIL + transformers + torch).

Writes tests/fixtures/image/:

  smart_resize.json       transformers' Qwen2-VL smart_resize on many sizes (and its errors)
  resize.json + .bin      torchvision resize(uint8, BICUBIC, antialias=True) on generated images;
                          inputs come from a seeded formula the C++ test reproduces
                          (generated_pixel below), outputs are stored concatenated in the .bin
  decode/                 small images in every supported format and mode, written here by PIL
                          or by the hand-rolled writers below (16-bit PNG, odd BMPs, GIF canvases)
  decode.json + .bin      what transformers' load_image gives for each (PIL open ->
                          ImageOps.exif_transpose -> convert("RGB")), concatenated in the .bin;
                          for the damaged_* files PIL's verdict may be an error instead
  processor/              end-to-end cases: an image file -> load_image -> Qwen2VLImageProcessor
                          (torchvision backend) -> pixel_values (.npy) and image_grid_thw

No expected value is typed by hand. The output is deterministic (fixed seeds).

Run inside the reference chroot:

    ../shared/refgen/inroot.sh -b <repo>:/repo -- python3 /repo/tools/golden/gen_image_fixtures.py
"""

import argparse
import io
import json
import os
import shutil
import struct
import warnings
import zlib

import numpy as np
import torch

warnings.filterwarnings("ignore")

import PIL  # noqa: E402
import PIL.features  # noqa: E402
import torchvision  # noqa: E402
import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision.transforms.v2 import functional as tvF  # noqa: E402
from transformers.image_utils import load_image  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor, smart_resize  # noqa: E402


# ------------------------------------------------------------------------------------------------
# Deterministic pixels shared with the C++ test (tests/media/image_test.cpp: generated_pixel).

MASK64 = (1 << 64) - 1


def mix64(z):
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK64
    return z ^ (z >> 31)


def generated_pixel(seed, pattern, y, x, c):
    """Pattern 0: noise; 1: hard 0/255 stripes (exercises clamping); 2: noise on a gradient."""
    noise = mix64((seed * 0x9E3779B97F4A7C15 + ((y * 65536 + x) * 4 + c)) & MASK64) & 0xFF
    if pattern == 0:
        return noise
    if pattern == 1:
        return 255 if ((x // 3 + y // 5 + c) % 2) else 0
    return ((x * 7 + y * 3 + c * 50) + (noise >> 3)) % 256


def generated_image(seed, pattern, h, w):
    out = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                out[y, x, c] = generated_pixel(seed, pattern, y, x, c)
    return out


# ------------------------------------------------------------------------------------------------
# smart_resize


def smart_resize_cases():
    rng = np.random.default_rng(7)
    sizes = [(480, 640), (768, 1024), (720, 1280), (1080, 1920), (336, 336), (224, 224), (100, 3000),
             (5000, 4000), (75, 101), (97, 130), (64, 64), (1, 1), (1, 200), (1, 201), (200, 1), (3, 601),
             (32, 32), (16, 16), (31, 33), (4096, 4096), (4097, 4095), (10000, 50), (50, 10000), (2, 399)]
    for _ in range(150):
        sizes.append((int(rng.integers(1, 300)), int(rng.integers(1, 300))))
    for _ in range(150):
        sizes.append((int(rng.integers(1, 8000)), int(rng.integers(1, 8000))))
    for _ in range(40):
        h = int(rng.integers(1, 60))
        sizes.append((h, int(h * rng.uniform(150, 220))))
    configs = [(32, 65536, 16777216), (32, 4096, 65536), (28, 3136, 12845056), (32, 4096, 25165824)]
    cases = []
    for h, w in sizes:
        for factor, lo, hi in configs:
            entry = {"height": h, "width": w, "factor": factor, "min_pixels": lo, "max_pixels": hi}
            try:
                rh, rw = smart_resize(h, w, factor=factor, min_pixels=lo, max_pixels=hi)
                entry["resized"] = [int(rh), int(rw)]
            except ValueError:
                entry["error"] = True
            cases.append(entry)
    return cases


# ------------------------------------------------------------------------------------------------
# Resize (the exact call HF makes: a PIL image -> pil_to_tensor -> stack -> tvF.resize)


def resize_like_hf(arr, h, w):
    tensor = torch.stack([tvF.pil_to_tensor(Image.fromarray(arr, "RGB"))])
    out = tvF.resize(tensor, [h, w], interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
    # The same call on a contiguous channels-first copy must agree (layout cannot matter).
    out2 = tvF.resize(tensor.contiguous(), [h, w], interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
    assert torch.equal(out, out2)
    return out[0].permute(1, 2, 0).contiguous().numpy()


def resize_cases():
    rng = np.random.default_rng(11)
    # (A 1x1 output trips an internal assert in torch 2.14's AVX kernel; HF never asks for one.)
    shapes = [((1, 1), (5, 7)), ((5, 7), (1, 2)), ((2, 2), (64, 3)), ((400, 3), (7, 2)), ((2, 500), (33, 4)),
              ((300, 300), (32, 32)), ((13, 17), (130, 170)), ((97, 130), (96, 128)), ((75, 101), (64, 96)),
              ((64, 64), (64, 96)), ((64, 64), (96, 64)), ((1, 600), (3, 3)), ((600, 1), (2, 9)),
              ((255, 40), (16, 200)), ((3, 3), (3, 200)), ((9, 1000), (9, 5)), ((100, 100), (99, 101))]
    while len(shapes) < 60:
        out = (int(rng.integers(1, 90)), int(rng.integers(1, 90)))
        if out != (1, 1):
            shapes.append(((int(rng.integers(1, 90)), int(rng.integers(1, 90))), out))
    cases, blobs, offset = [], [], 0
    for index, ((ih, iw), (oh, ow)) in enumerate(shapes):
        seed, pattern = 1000 + index, index % 3
        out = resize_like_hf(generated_image(seed, pattern, ih, iw), oh, ow)
        assert out.shape == (oh, ow, 3)
        cases.append({"seed": seed, "pattern": pattern, "in": [ih, iw], "out": [oh, ow], "offset": offset})
        blobs.append(out.tobytes())
        offset += out.size
    return cases, b"".join(blobs)


# ------------------------------------------------------------------------------------------------
# Hand-rolled writers for what PIL cannot write (or not with full control).


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def pack_row(row, depth):
    if depth == 16:
        return row.astype(">u2").tobytes()
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    bits = "".join(format(int(v), f"0{depth}b") for v in row.reshape(-1))
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_bytes(arr, color_type, depth, before_idat=b"", after_idat=b"", interlace=False):
    """arr: [h, w] or [h, w, channels] of sample values (not packed)."""
    h, w = arr.shape[:2]
    raw = b""
    if interlace:
        for x0, y0, dx, dy in ADAM7:
            sub = arr[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += b"".join(b"\0" + pack_row(r, depth) for r in sub)
    else:
        raw = b"".join(b"\0" + pack_row(r, depth) for r in arr)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + before_idat + png_chunk(b"IDAT", zlib.compress(raw))
            + after_idat + png_chunk(b"IEND", b""))


def bmp_bytes(width, height, bits, rows, palette=None, header_size=40, compression=0, top_down=False,
              masks=None, colors=None, pixel_data=None):
    """rows: list of packed row bytes, top row first (padded here); pixel_data overrides (RLE)."""
    palette = palette or []
    if pixel_data is None:
        stride = ((width * bits + 31) >> 3) & ~3
        ordered = rows if top_down else rows[::-1]
        pixel_data = b"".join(r + b"\0" * (stride - len(r)) for r in ordered)
    if header_size == 12:
        header = struct.pack("<IHHHH", 12, width, height, 1, bits)
        pal = b"".join(bytes([b, g, r]) for (r, g, b) in palette)
    else:
        n_colors = len(palette) if colors is None else colors
        header = struct.pack("<IiiHHIIiiII", header_size, width, -height if top_down else height, 1, bits,
                             compression, len(pixel_data), 2835, 2835, n_colors, 0)
        extra = b""
        if masks is not None and header_size >= 52:
            extra = struct.pack("<" + "I" * len(masks), *masks)
        header += extra + b"\0" * (header_size - len(header) - len(extra))
        if masks is not None and header_size == 40:
            header += struct.pack("<III", *masks[:3])
        pal = b"".join(bytes([b, g, r, 0]) for (r, g, b) in palette)
    offset = 14 + len(header) + len(pal)
    return b"BM" + struct.pack("<IHHI", offset + len(pixel_data), 0, 0, offset) + header + pal + pixel_data


def lzw_encode(indices, min_code_size, clear_when_full=True):
    clear, end = 1 << min_code_size, (1 << min_code_size) + 1

    def reset():
        return {(i,): i for i in range(clear)}, end + 1, min_code_size + 1

    table, next_code, size = reset()
    codes = [(clear, size)]
    current = ()
    for k in indices:
        extended = current + (int(k),)
        if extended in table:
            current = extended
            continue
        codes.append((table[current], size))
        if next_code < 4096:
            table[extended] = next_code
            next_code += 1
            if next_code > (1 << size) and size < 12:
                size += 1
        elif clear_when_full:
            codes.append((clear, size))
            table, next_code, size = reset()
        current = (int(k),)
    if current:
        codes.append((table[current], size))
    codes.append((end, size))
    bits, nbits, out = 0, 0, bytearray()
    for code, width in codes:
        bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
    if nbits:
        out.append(bits & 0xFF)
    blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
    return bytes([min_code_size]) + blocks + b"\0"


def gif_bytes(screen, frames, global_palette=None, background=0):
    """frames: dicts with x, y, indices [h, w], palette (local), transparency, interlace, min_code_size."""
    w, h = screen
    flags = 0
    gp = b""
    if global_palette is not None:
        bits = max(1, int(np.ceil(np.log2(max(2, len(global_palette))))))
        gp = b"".join(bytes(c) for c in global_palette) + b"\0" * (3 * ((1 << bits) - len(global_palette)))
        flags = 0x80 | (bits - 1)
    out = b"GIF89a" + struct.pack("<HHBBB", w, h, flags, background, 0) + gp
    for f in frames:
        if f.get("transparency") is not None:
            out += b"\x21\xF9\x04" + bytes([0x01 | (f.get("disposal", 0) << 2)]) + b"\0\0" + bytes([f["transparency"]]) + b"\0"
        fh, fw = f["indices"].shape
        lflags, lp = 0, b""
        if f.get("palette") is not None:
            bits = max(1, int(np.ceil(np.log2(max(2, len(f["palette"]))))))
            lp = b"".join(bytes(c) for c in f["palette"]) + b"\0" * (3 * ((1 << bits) - len(f["palette"])))
            lflags = 0x80 | (bits - 1)
        rows = f["indices"]
        if f.get("interlace"):
            lflags |= 0x40
            order = list(range(0, fh, 8)) + list(range(4, fh, 8)) + list(range(2, fh, 4)) + list(range(1, fh, 2))
            rows = rows[order]
        out += b"\x2C" + struct.pack("<HHHHB", f["x"], f["y"], fw, fh, lflags) + lp
        out += lzw_encode(rows.reshape(-1), f.get("min_code_size", 8), f.get("clear_when_full", True))
    return out + b"\x3B"


def exif_with_orientation(value, big_endian=False, value_type=3):
    """A minimal TIFF/EXIF block (without the 'Exif\\0\\0' prefix) holding one Orientation entry."""
    e = ">" if big_endian else "<"
    head = (b"MM\x00\x2a" if big_endian else b"II\x2a\x00") + struct.pack(e + "I", 8)
    if value_type == 3:
        data = struct.pack(e + "HH", value, 0)
    else:
        data = struct.pack(e + "I", value)
    entry = struct.pack(e + "HHI", 0x0112, value_type, 1) + data
    ifd = struct.pack(e + "H", 2) + struct.pack(e + "HHI", 0x010F, 2, 4) + b"q3v\0" + entry + struct.pack(e + "I", 0)
    return head + ifd


# ------------------------------------------------------------------------------------------------
# Decode cases


def smooth_image(h, w, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([(x * 11 + y * 3) % 256, (x * x // 3 + y * 5) % 256,
                     128 + 100 * np.sin(x / 4.0) * np.cos(y / 5.0)], -1)
    return np.clip(base + rng.integers(-25, 25, (h, w, 3)), 0, 255).astype(np.uint8)


def pil_bytes(image, fmt, **kwargs):
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def decode_cases():
    rng = np.random.default_rng(5)
    files = {}
    rgb = smooth_image(11, 13, 1)
    big = smooth_image(37, 53, 2)

    # JPEG: chroma subsampling, quality, progressive, grey, CMYK, restart markers, EXIF orientations.
    for sub, name in ((0, "444"), (1, "422"), (2, "420")):
        files[f"jpeg_{name}.jpg"] = pil_bytes(Image.fromarray(big), "JPEG", quality=85, subsampling=sub)
        files[f"jpeg_{name}_progressive.jpg"] = pil_bytes(Image.fromarray(big), "JPEG", quality=60, subsampling=sub,
                                                          progressive=True)
    files["jpeg_odd_size_420.jpg"] = pil_bytes(Image.fromarray(smooth_image(17, 9, 3)), "JPEG", quality=90, subsampling=2)
    files["jpeg_grey.jpg"] = pil_bytes(Image.fromarray(big[..., 1]), "JPEG", quality=80)
    cmyk = np.concatenate([big, rng.integers(0, 256, big.shape[:2] + (1,), dtype=np.uint8)], -1)
    files["jpeg_cmyk.jpg"] = pil_bytes(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=90)
    files["jpeg_restart.jpg"] = pil_bytes(Image.fromarray(big), "JPEG", quality=75, restart_marker_blocks=2)
    oriented = smooth_image(6, 10, 4)  # non-square, so every orientation gives a different picture
    for value in range(1, 9):
        exif = b"Exif\0\0" + exif_with_orientation(value, big_endian=(value % 2 == 0))
        files[f"jpeg_orientation_{value}.jpg"] = pil_bytes(Image.fromarray(oriented), "JPEG", quality=95, exif=exif)
    files["jpeg_orientation_6_long.jpg"] = pil_bytes(Image.fromarray(oriented), "JPEG", quality=95,
                                                     exif=b"Exif\0\0" + exif_with_orientation(6, value_type=4))
    files["jpeg_xmp_orientation_8.jpg"] = pil_bytes(
        Image.fromarray(oriented), "JPEG", quality=95,
        xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="8"/></x:xmpmeta>')
    files["jpeg_exif_1_beats_xmp.jpg"] = pil_bytes(
        Image.fromarray(oriented), "JPEG", quality=95, exif=b"Exif\0\0" + exif_with_orientation(1),
        xmp=b'<x:xmpmeta><rdf:Description tiff:Orientation="6"/></x:xmpmeta>')

    # PNG: every colour type and bit depth.
    files["png_rgb8.png"] = pil_bytes(Image.fromarray(rgb), "PNG")
    rgba = np.concatenate([rgb, rng.integers(0, 256, rgb.shape[:2] + (1,), dtype=np.uint8)], -1)
    rgba[0, 0, 3] = 0
    files["png_rgba8.png"] = pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG")
    files["png_grey8.png"] = pil_bytes(Image.fromarray(rgb[..., 0]), "PNG")
    files["png_grey_alpha8.png"] = pil_bytes(Image.fromarray(rgba[..., (0, 3)], "LA"), "PNG")
    pal_img = Image.fromarray(rgb).quantize(colors=23)
    files["png_palette8.png"] = pil_bytes(pal_img, "PNG")
    files["png_palette8_trns.png"] = pil_bytes(pal_img, "PNG", transparency=3)
    palette = bytes(rng.integers(0, 256, 3 * 16, dtype=np.uint8))
    for depth in (1, 2, 4):
        idx = rng.integers(0, 1 << depth, (7, 9))
        files[f"png_palette{depth}.png"] = png_bytes(idx, 3, depth, png_chunk(b"PLTE", palette[:3 << depth]))
        files[f"png_grey{depth}.png"] = png_bytes(rng.integers(0, 1 << depth, (7, 9)), 0, depth)
    files["png_palette_index_out_of_range.png"] = png_bytes(np.array([[0, 1, 2, 7, 200]]), 3, 8,
                                                            png_chunk(b"PLTE", palette[:9]))
    for name, ct, ch in (("rgb16", 2, 3), ("rgba16", 6, 4), ("grey16", 0, 1), ("grey_alpha16", 4, 2)):
        values = rng.integers(0, 65536, (5, 7, ch))
        values[0, :4, 0] = [0, 255, 256, 65535]  # grey16: PIL clips to 255, the rest take the high byte
        files[f"png_{name}.png"] = png_bytes(values if ch > 1 else values[..., 0], ct, 16)
    files["png_grey16_small_values.png"] = png_bytes(rng.integers(0, 300, (4, 6)), 0, 16)
    files["png_rgb8_interlaced.png"] = png_bytes(smooth_image(19, 21, 6), 2, 8, interlace=True)
    files["png_grey2_interlaced.png"] = png_bytes(rng.integers(0, 4, (10, 11)), 0, 2, interlace=True)
    files["png_rgb16_interlaced.png"] = png_bytes(rng.integers(0, 65536, (9, 10, 3)), 2, 16, interlace=True)
    files["png_rgb8_trns.png"] = png_bytes(rgb, 2, 8, png_chunk(b"tRNS", struct.pack(">HHH", *rgb[0, 0])))
    files["png_exif_orientation_6.png"] = png_bytes(oriented, 2, 8, png_chunk(b"eXIf", exif_with_orientation(6)))
    files["png_exif_after_idat_3.png"] = png_bytes(oriented, 2, 8, after_idat=png_chunk(b"eXIf", exif_with_orientation(3)))
    raw_profile = exif_with_orientation(8).hex()
    text = "\nexif\n" + f"{len(raw_profile) // 2:8d}\n" + "\n".join(raw_profile[i:i + 72] for i in range(0, len(raw_profile), 72))
    files["png_raw_profile_orientation_8.png"] = png_bytes(
        oriented, 2, 8, png_chunk(b"zTXt", b"Raw profile type exif\0\0" + zlib.compress(text.encode())))
    xmp = '<x:xmpmeta><rdf:Description tiff:Orientation="5"/></x:xmpmeta>'
    files["png_xmp_orientation_5.png"] = png_bytes(
        oriented, 2, 8, png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp.encode()))

    # WebP: lossy, lossless, alpha (colour under alpha 0 kept), animated (first frame), EXIF/XMP.
    files["webp_lossy.webp"] = pil_bytes(Image.fromarray(big), "WEBP", quality=80)
    files["webp_lossless.webp"] = pil_bytes(Image.fromarray(big), "WEBP", lossless=True)
    files["webp_lossless_alpha.webp"] = pil_bytes(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True, exact=True)
    files["webp_lossy_alpha.webp"] = pil_bytes(Image.fromarray(rgba, "RGBA"), "WEBP", quality=70)
    frames = [Image.fromarray(smooth_image(9, 12, 7)), Image.fromarray(smooth_image(9, 12, 8))]
    files["webp_animated.webp"] = pil_bytes(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    files["webp_exif_orientation_6.webp"] = pil_bytes(Image.fromarray(oriented), "WEBP", lossless=True,
                                                      exif=b"Exif\0\0" + exif_with_orientation(6))
    files["webp_xmp_orientation_7.webp"] = pil_bytes(Image.fromarray(oriented), "WEBP", lossless=True,
                                                     xmp=b"<x:xmpmeta><tiff:Orientation>7</tiff:Orientation></x:xmpmeta>")

    # BMP: PIL's writer and hand-made variants.
    files["bmp_rgb24.bmp"] = pil_bytes(Image.fromarray(rgb), "BMP")
    files["bmp_palette8_pil.bmp"] = pil_bytes(pal_img, "BMP")
    files["bmp_grey8_pil.bmp"] = pil_bytes(Image.fromarray(rgb[..., 2]), "BMP")
    files["bmp_1bit_pil.bmp"] = pil_bytes(Image.fromarray(rgb[..., 0] > 128), "BMP")
    files["bmp_rgba32_pil.bmp"] = pil_bytes(Image.fromarray(rgba, "RGBA"), "BMP")
    w, h = 7, 5
    pix32 = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    files["bmp_32_bi_rgb.bmp"] = bmp_bytes(w, h, 32, [r.tobytes() for r in pix32])
    files["bmp_32_top_down.bmp"] = bmp_bytes(w, h, 32, [r.tobytes() for r in pix32], top_down=True)
    files["bmp_32_bitfields_xbgr_v5.bmp"] = bmp_bytes(w, h, 32, [r.tobytes() for r in pix32], header_size=124,
                                                      compression=3, masks=[0xFF000000, 0xFF0000, 0xFF00, 0])
    files["bmp_32_bitfields_rgba_v4.bmp"] = bmp_bytes(w, h, 32, [r.tobytes() for r in pix32], header_size=108,
                                                      compression=3, masks=[0xFF, 0xFF00, 0xFF0000, 0xFF000000])
    files["bmp_24_core_header.bmp"] = bmp_bytes(w, h, 24, [r[:, :3].tobytes() for r in pix32], header_size=12)
    pix16 = rng.integers(0, 65536, (h, w)).astype("<u2")
    files["bmp_16_555.bmp"] = bmp_bytes(w, h, 16, [r.tobytes() for r in pix16])
    files["bmp_16_565_bitfields.bmp"] = bmp_bytes(w, h, 16, [r.tobytes() for r in pix16], compression=3,
                                                  masks=[0xF800, 0x7E0, 0x1F])
    files["bmp_16_555_bitfields_v3.bmp"] = bmp_bytes(w, h, 16, [r.tobytes() for r in pix16], header_size=56,
                                                     compression=3, masks=[0x7C00, 0x3E0, 0x1F, 0])
    pal16 = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(16)]
    idx4 = rng.integers(0, 16, (h, w))
    files["bmp_4bit.bmp"] = bmp_bytes(w, h, 4, [pack_row(r, 4) for r in idx4], palette=pal16)
    idx8 = rng.integers(0, 12, (h, w))
    idx8[0, :3] = [11, 200, 255]  # beyond the 12-colour palette: black in PIL
    files["bmp_8bit_short_palette.bmp"] = bmp_bytes(w, h, 8, [r.astype(np.uint8).tobytes() for r in idx8],
                                                    palette=pal16[:12])
    grey_ramp = [(i, i, i) for i in range(40)]
    files["bmp_8bit_grey_ramp.bmp"] = bmp_bytes(w, h, 8, [r.astype(np.uint8).tobytes() for r in idx8 % 64],
                                                palette=grey_ramp)
    files["bmp_8bit_core_header.bmp"] = bmp_bytes(w, h, 8, [r.astype(np.uint8).tobytes() for r in idx8 % 16],
                                                  palette=pal16, header_size=12)
    # RLE8: runs, an absolute run of odd length (padded), end-of-line, a delta, end-of-bitmap.
    rle8 = bytes([3, 1, 0, 3, 2, 5, 9, 0, 1, 4, 0, 0,
                  7, 2, 0, 0,
                  0, 2, 2, 1, 2, 3, 0, 0,
                  0, 2, 2, 1, 5, 6,
                  0, 1])
    files["bmp_rle8.bmp"] = bmp_bytes(w, h, 8, None, palette=pal16, compression=1, pixel_data=rle8)
    # RLE4: runs alternate two nibbles; an odd absolute run (PIL drops its last pixel).
    rle4 = bytes([5, 0x12, 2, 0x34, 0, 0,
                  0, 3, 0x56, 0x70, 4, 0x9A, 0, 0,
                  7, 0xBC, 0, 0,
                  7, 0xDE, 0, 0,
                  7, 0xF0, 0, 1])
    files["bmp_rle4.bmp"] = bmp_bytes(w, h, 4, None, palette=pal16, compression=2, pixel_data=rle4)

    # GIF: global/local palettes, transparency, canvases larger than the frame, interlace, animation.
    gpal = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(13)]
    idx = rng.integers(0, 13, (8, 11))
    files["gif_global.gif"] = gif_bytes((11, 8), [{"x": 0, "y": 0, "indices": idx, "min_code_size": 4}], gpal)
    files["gif_interlaced.gif"] = gif_bytes((11, 19), [{"x": 0, "y": 0, "indices": rng.integers(0, 13, (19, 11)),
                                                        "interlace": True, "min_code_size": 4}], gpal)
    files["gif_small_frame.gif"] = gif_bytes((12, 10), [{"x": 3, "y": 2, "indices": idx[:5, :6], "min_code_size": 4}],
                                             gpal, background=5)
    files["gif_small_frame_transparent.gif"] = gif_bytes(
        (12, 10), [{"x": 3, "y": 2, "indices": idx[:5, :6], "transparency": 7, "min_code_size": 4}], gpal)
    files["gif_frame_beyond_screen.gif"] = gif_bytes((6, 4), [{"x": 2, "y": 1, "indices": idx[:5, :7],
                                                               "min_code_size": 4}], gpal)
    lpal = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(4)]
    files["gif_local_palette.gif"] = gif_bytes((11, 8), [{"x": 0, "y": 0, "indices": idx % 4, "palette": lpal,
                                                          "min_code_size": 2}], gpal)
    files["gif_no_palette.gif"] = gif_bytes((11, 8), [{"x": 0, "y": 0, "indices": idx * 19, "min_code_size": 8}])
    files["gif_grey_identity_palette.gif"] = gif_bytes(
        (11, 8), [{"x": 0, "y": 0, "indices": idx, "min_code_size": 4}], [(i, i, i) for i in range(16)])
    files["gif_index_beyond_palette.gif"] = gif_bytes((11, 8), [{"x": 0, "y": 0, "indices": idx * 3 + 1,
                                                                 "min_code_size": 6}], gpal)
    files["gif_animated.gif"] = gif_bytes((11, 8), [{"x": 0, "y": 0, "indices": idx, "min_code_size": 4},
                                                    {"x": 1, "y": 1, "indices": idx[:3, :3], "min_code_size": 4}], gpal)
    long_run = np.concatenate([np.zeros(3000, np.int64), rng.integers(0, 256, 6000), np.full(3000, 7)])
    files["gif_table_full_clear.gif"] = gif_bytes((120, 100), [{"x": 0, "y": 0, "indices": long_run.reshape(100, 120)}],
                                                  [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(256)])
    files["gif_table_full_no_clear.gif"] = gif_bytes(
        (120, 100), [{"x": 0, "y": 0, "indices": long_run.reshape(100, 120), "clear_when_full": False}],
        [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(256)])
    files["gif_pil.gif"] = pil_bytes(pal_img, "GIF")

    # Damaged files: PIL's verdict (an image, or an error) is the expected one.
    png = bytearray(files["png_rgb8.png"])
    idat = png.index(b"IDAT")
    idat_end = idat + 4 + struct.unpack(">I", png[idat - 4:idat])[0]
    bad_adler = bytearray(png)
    bad_adler[idat_end - 1] ^= 0xFF  # last byte of the zlib checksum; then repair the chunk CRC
    bad_adler[idat_end:idat_end + 4] = struct.pack(">I", zlib.crc32(bytes(bad_adler[idat:idat_end])) & 0xFFFFFFFF)
    files["damaged_png_bad_zlib_checksum.png"] = bytes(bad_adler)
    bad_idat_crc = bytearray(png)
    bad_idat_crc[idat_end] ^= 0x55
    files["damaged_png_bad_idat_crc.png"] = bytes(bad_idat_crc)
    bad_ihdr_crc = bytearray(png)
    bad_ihdr_crc[29] ^= 0x55
    files["damaged_png_bad_ihdr_crc.png"] = bytes(bad_ihdr_crc)
    files["damaged_png_no_iend.png"] = bytes(png[:-12])
    files["damaged_png_truncated_idat.png"] = bytes(png[:idat + 60])
    gif = files["gif_global.gif"]
    files["damaged_gif_no_trailer.gif"] = gif[:-1]
    files["damaged_gif_truncated.gif"] = gif[:len(gif) * 2 // 3]
    short = gif_bytes((11, 8), [{"x": 0, "y": 0, "indices": idx[:5], "min_code_size": 4}], gpal)
    at = 13 + 48 + 7  # image descriptor height, after the header and the 16-colour table
    files["damaged_gif_data_ends_early.gif"] = short[:at] + struct.pack("<H", 8) + short[at + 2:]
    jpeg = files["jpeg_420.jpg"]
    files["damaged_jpeg_no_eoi.jpg"] = jpeg[:-2]
    files["damaged_jpeg_truncated.jpg"] = jpeg[:len(jpeg) // 2]
    corrupt = bytearray(jpeg)
    for at in range(len(jpeg) // 2, len(jpeg) // 2 + 40, 7):
        corrupt[at] = 0x5A  # garbage in the entropy-coded data: libjpeg warns, PIL decodes anyway
    files["damaged_jpeg_corrupt_scan.jpg"] = bytes(corrupt)
    bmp = files["bmp_rgb24.bmp"]
    files["damaged_bmp_last_row_unpadded.bmp"] = bmp[:-(((13 * 3 + 3) & ~3) - 13 * 3)]
    files["damaged_bmp_truncated.bmp"] = bmp[:len(bmp) - 50]
    rle = files["bmp_rle8.bmp"]
    files["damaged_bmp_rle_ends_early.bmp"] = rle[:-8] + bytes([0, 1])
    files["damaged_webp_truncated.webp"] = files["webp_lossy.webp"][:600]
    return files


# ------------------------------------------------------------------------------------------------
# End-to-end processor cases


def processor_cases(out_dir):
    cases = []
    common = dict(patch_size=16, temporal_patch_size=2, merge_size=2)
    specs = [
        ("clip_norm", "clip_norm.png", smooth_image(40, 57, 9), "PNG", {},
         dict(image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
              min_pixels=4096, max_pixels=65536)),
        ("jpeg_rotated", "jpeg_rotated.jpg", smooth_image(44, 70, 10), "JPEG",
         dict(quality=90, exif=b"Exif\0\0" + exif_with_orientation(6)),
         dict(image_mean=[0.5] * 3, image_std=[0.5] * 3, min_pixels=4096, max_pixels=65536)),
        ("downscale_max_pixels", "downscale.webp", smooth_image(150, 230, 11), "WEBP", dict(lossless=True),
         dict(image_mean=[0.5] * 3, image_std=[0.5] * 3, min_pixels=1024, max_pixels=8192)),
    ]
    for name, fname, arr, fmt, save_kwargs, proc_kwargs in specs:
        path = os.path.join(out_dir, fname)
        Image.fromarray(arr).save(path, fmt, **save_kwargs)
        processor = Qwen2VLImageProcessor(**common, **proc_kwargs)
        enc = processor(images=[load_image(path)], return_tensors="pt")
        pixel_values = enc["pixel_values"].numpy().astype(np.float32)
        np.save(os.path.join(out_dir, f"{name}_pixel_values.npy"), pixel_values)
        cases.append({"name": name, "file": fname, "preprocessor_config": {
            "size": {"shortest_edge": proc_kwargs["min_pixels"], "longest_edge": proc_kwargs["max_pixels"]},
            "image_mean": proc_kwargs["image_mean"], "image_std": proc_kwargs["image_std"], **common},
            "image_grid_thw": enc["image_grid_thw"].tolist()[0], "pixel_values": f"{name}_pixel_values.npy"})
    return cases


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/repo/tests/fixtures/image")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(os.path.join(args.out, "decode"))
    os.makedirs(os.path.join(args.out, "processor"))
    versions = {"generator": "tools/golden/gen_image_fixtures.py", "torch": torch.__version__,
                "torchvision": torchvision.__version__, "transformers": transformers.__version__,
                "pillow": PIL.__version__, "libjpeg_turbo": PIL.features.version("libjpeg_turbo"),
                "libwebp": PIL.features.version("webp"), "zlib": PIL.features.version("zlib"),
                "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}

    with open(os.path.join(args.out, "smart_resize.json"), "w") as f:
        json.dump({**versions, "cases": smart_resize_cases()}, f, indent=0)

    cases, blob = resize_cases()
    with open(os.path.join(args.out, "resize.bin"), "wb") as f:
        f.write(blob)
    with open(os.path.join(args.out, "resize.json"), "w") as f:
        json.dump({**versions, "outputs": "resize.bin: uint8 HWC outputs back to back at each case's offset",
                   "cases": cases}, f, indent=0)

    entries, blobs, offset = [], [], 0
    for name, data in sorted(decode_cases().items()):
        path = os.path.join(args.out, "decode", name)
        with open(path, "wb") as f:
            f.write(data)
        try:
            image = load_image(path)  # exactly what transformers does with a path
        except Exception as error:  # noqa: BLE001 - PIL's verdict on a damaged file
            assert name.startswith("damaged_"), (name, error)
            entries.append({"file": name, "error": f"{type(error).__name__}: {error}"})
            continue
        assert image.mode == "RGB"
        arr = np.asarray(image)
        entries.append({"file": name, "height": arr.shape[0], "width": arr.shape[1], "offset": offset})
        blobs.append(arr.tobytes())
        offset += arr.size
    with open(os.path.join(args.out, "decode.bin"), "wb") as f:
        f.write(b"".join(blobs))
    with open(os.path.join(args.out, "decode.json"), "w") as f:
        json.dump({**versions, "expected": "decode.bin: load_image(file) as uint8 HWC RGB back to back at each "
                   "case's offset", "cases": entries}, f, indent=0)

    with open(os.path.join(args.out, "processor.json"), "w") as f:
        json.dump({**versions, "cases": processor_cases(os.path.join(args.out, "processor"))}, f, indent=0)
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(args.out) for n in ns)
    print(f"wrote {args.out}: {total} bytes")


if __name__ == "__main__":
    main()
