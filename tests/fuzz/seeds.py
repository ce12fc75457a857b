#!/usr/bin/python3
"""
Seed corpora for the fuzz targets, from the project's own files:

    /usr/bin/python3 tests/fuzz/seeds.py OUT    (OUT/config, model, image, options, args)

config: the model_config text of every fixture and tests/bad model
        (HDF5 attribute, architecture .json, config.json of a .keras zip)
model:  the .h5/.hdf5/.keras files themselves (up to 128 KiB each)
image:  tests/bad's images and small PNG/JPEG files of every colour type
        made here (PNG by hand; JPEG through PIL when it is installed)
options: one "key=value" file per option, and one with many
Generated at build time into build/fuzz/corpus; never committed. Without
h5py, configs are taken from .json and .keras files only.
"""
import hashlib
import io
import os
import struct
import sys
import zipfile
import zlib

ROOTS = ["tests/fixtures/cases", "tests/bad"]
MAX_SEED = 128 * 1024


def save(out, kind, data):
    if not data or len(data) > MAX_SEED:
        return
    d = os.path.join(out, kind)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def model_files():
    for root in ROOTS:
        for dirpath, _, files in os.walk(root):
            for f in sorted(files):
                yield os.path.join(dirpath, f)


def configs_and_models(out):
    try:
        import h5py
    except ImportError:
        h5py = None
    for p in model_files():
        data = open(p, "rb").read()
        if p.endswith((".h5", ".hdf5")) and data[:4] == b"\x89HDF":
            save(out, "model", data)
            if h5py:
                try:
                    with h5py.File(p, "r") as f:
                        c = f.attrs.get("model_config")
                        if c is not None:
                            save(out, "config", c.encode() if isinstance(c, str)
                                 else bytes(c))
                except Exception:
                    pass
        elif p.endswith(".keras") and data[:2] == b"PK":
            save(out, "model", data)
            try:
                save(out, "config", zipfile.ZipFile(io.BytesIO(data)).read("config.json"))
            except Exception:
                pass
        elif p.endswith(".json") and os.path.basename(p) == "model.json":
            save(out, "config", data)


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))


def png(w, h, depth, color, palette=False):
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    row_bytes = (w * channels * depth + 7) // 8
    raw = b""
    for y in range(h):
        raw += bytes([y % 5]) + bytes((x * 37 + y * 11) & 0xff
                                      for x in range(row_bytes))
    body = png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
    if palette:
        body += png_chunk(b"PLTE", bytes(range(48)) * 16)
        body += png_chunk(b"tRNS", bytes([255, 128, 0]))
    return (b"\x89PNG\r\n\x1a\n" + body +
            png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def images(out):
    for p in model_files():
        if p.endswith((".png", ".jpg", ".jpeg")):
            save(out, "image", open(p, "rb").read())
    for w, h, depth, color, pal in [(7, 5, 8, 0, False), (7, 5, 16, 0, False),
                                    (7, 5, 1, 0, False), (7, 5, 4, 3, True),
                                    (6, 4, 8, 2, False), (6, 4, 16, 2, False),
                                    (5, 5, 8, 4, False), (5, 3, 8, 6, False),
                                    (5, 3, 16, 6, False)]:
        save(out, "image", png(w, h, depth, color, palette=pal))
    try:
        from PIL import Image
    except ImportError:
        return
    px = bytes((i * 7) & 0xff for i in range(19 * 11 * 3))
    rgb = Image.frombytes("RGB", (19, 11), px)
    for mode, kw in [("RGB", {}), ("RGB", {"progressive": True}),
                     ("RGB", {"subsampling": 0}), ("L", {}), ("CMYK", {}),
                     ("RGB", {"quality": 20, "optimize": True})]:
        bio = io.BytesIO()
        rgb.convert(mode).save(bio, "JPEG", **kw)
        save(out, "image", bio.getvalue())
    bio = io.BytesIO()
    rgb.save(bio, "PNG", interlace=1)
    save(out, "image", bio.getvalue())


OPTIONS = {
    "weights": ["w.h5"], "max_layers": ["1", "10000"], "max_dim": ["64"],
    "max_elements": ["4096"], "max_weight_bytes": ["0", "1024"],
    "max_json_bytes": ["2"], "max_json_depth": ["2"], "threads": ["0", "4"],
    "max_pixels": ["1", "100"], "png_alpha": ["drop", "black", "white"],
    "crop": ["none", "center"], "resize": ["bilinear", "nearest", "area"],
    "preprocess": ["unit", "mobilenet", "caffe", "torch", "raw"],
    "scale": ["0.5", "1,2,3", "1e308,-1e308,nan"], "offset": ["-1", "1,2,3"],
    "cmap": ["viridis", "magma", "turbo", "jet", "gray"], "cols": ["1", "256"],
    "norm": ["channel", "layer", "global", "fixed:0,1", "fixed:1,0"],
    "global_range": ["-1,1", "0,0"], "upscale": ["0", "3", "64"],
    "separator": ["0", "16"], "legend": ["0", "1"], "alpha": ["0", "0.4", "1"],
    "overlay_cmap": ["jet", "gray"], "overlay_range": ["0,1", "-5,5"],
}


def options(out):
    for k, vs in OPTIONS.items():
        for v in vs:
            save(out, "options", ("%s=%s\n" % (k, v)).encode())
    save(out, "options", "".join("%s=%s\n" % (k, vs[-1])
                                 for k, vs in OPTIONS.items()).encode())
    save(out, "options", b"norm=global\nglobal_range=-2,2\nupscale=2\ncols=2\n")


ARGS = [
    ["m.h5", "a.jpg", "b.png", "-o", "out"],
    ["m.h5", "--input-npy", "in.npy", "--npy-dir", "dir", "--weights", "w.h5"],
    ["--summary", "m.h5"], ["--bench", "3", "--threads", "2", "--batch", "4", "--profile", "m.h5"],
    ["m.h5", "x.jpg", "-o", "o", "--layers", "conv,3-7", "--overlay", "last-conv",
     "--overlay-channel", "mean", "--cols=8", "--cmap", "magma", "--norm", "fixed:0,1",
     "--alpha", "0.4", "--labels", "fer2013", "--top", "3", "--save-npy", "all", "-q"],
    ["m.h5", "x.jpg", "-o", "o", "--cam", "gradcam,layercam", "--class", "happy-vs-neutral",
     "--cam-layer", "conv", "--cam-norm", "minmax", "--sanity", "--eval", "deletion,insertion",
     "--target-logit", "--set", "ig_steps=64", "--output", "0"],
    ["--list-layers"], ["--help"], ["--version"], ["--top"], ["--set", "=1"], ["-"],
]


def args(out):
    for a in ARGS:
        save(out, "args", b"\0".join(s.encode() for s in a))


def main():
    out = sys.argv[1]
    configs_and_models(out)
    images(out)
    options(out)
    args(out)
    for kind in ("config", "model", "image", "options", "args"):
        d = os.path.join(out, kind)
        print("  corpus %-8s %4d seeds" % (kind, len(os.listdir(d)) if os.path.isdir(d) else 0))


if __name__ == "__main__":
    main()
