#!/usr/bin/python3
"""Writes the bundled demo: demo_model.h5 (a Keras 2 .h5 with hand-set
filters, so its feature maps mean something) and demo.png (a drawn scene).

The model (96x96 RGB in, 4 classes: edges, red, blue, green):
  conv_features  Conv2D 8 filters 5x5 same, relu: vertical / horizontal /
                 two diagonal edge detectors on brightness, a centre-surround
                 blob detector, and red / green / blue colour-opponent units
  pool1          MaxPooling2D 2x2
  conv_parts     Conv2D 4 filters 3x3 same, relu: any edge, red, blue, green
  pool2          MaxPooling2D 2x2
  gap            GlobalAveragePooling2D
  scores         Dense 4, softmax
Run with Debian's python3 (numpy, h5py):  /usr/bin/python3 make_demo.py
Output is deterministic; the files are committed so users need no Python.
"""
import json
import os
import struct
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def conv_cfg(name, filters, k, act):
    return {"class_name": "Conv2D", "config": {
        "name": name, "trainable": True, "dtype": "float32", "filters": filters,
        "kernel_size": [k, k], "strides": [1, 1], "padding": "same",
        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
        "activation": act, "use_bias": True}}


def first_features():
    """(5,5,3,8) kernel and bias of conv_features."""
    k = np.zeros((5, 5, 3, 8), np.float32)
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    sobel = np.array([[1, 2, 0, -2, -1]] * 5, np.float32) * np.array([1, 2, 3, 2, 1], np.float32)[:, None] / 16.0
    diag = np.array([[2 if i == j else (-1 if abs(i - j) == 2 else 0) for j in range(5)] for i in range(5)],
                    np.float32) / 4.0
    diag -= diag.mean()  # no response to flat areas
    y, x = np.mgrid[-2:3, -2:3]
    dog = np.exp(-(x * x + y * y) / 1.0) - 0.35 * np.exp(-(x * x + y * y) / 6.0)
    dog = (dog - dog.mean()).astype(np.float32)
    for c in range(3):
        k[:, :, c, 0] = sobel * lum[c]
        k[:, :, c, 1] = sobel.T * lum[c]
        k[:, :, c, 2] = diag * lum[c]
        k[:, :, c, 3] = diag[:, ::-1] * lum[c]
        k[:, :, c, 4] = dog * lum[c] * 2
    centre = np.zeros((5, 5), np.float32)
    centre[1:4, 1:4] = 1 / 9.0
    opp = {5: [1, -0.5, -0.5], 6: [-0.5, 1, -0.5], 7: [-0.5, -0.5, 1]}
    for f, w in opp.items():
        for c in range(3):
            k[:, :, c, f] = centre * w[c] * 2
    bias = np.array([0, 0, 0, 0, 0, -0.15, -0.15, -0.15], np.float32)
    return k, bias


def second_parts():
    k = np.zeros((3, 3, 8, 4), np.float32)
    centre = np.zeros((3, 3), np.float32)
    centre[1, 1] = 1
    for f in range(4):
        k[:, :, f, 0] = centre * 0.5
    k[:, :, 5, 1] = centre
    k[:, :, 7, 2] = centre
    k[:, :, 6, 3] = centre
    return k, np.zeros(4, np.float32)


def write_model(path):
    layers = [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 96, 96, 3],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "image"}},
        conv_cfg("conv_features", 8, 5, "relu"),
        {"class_name": "MaxPooling2D", "config": {"name": "pool1", "trainable": True, "dtype": "float32",
                                                  "pool_size": [2, 2], "padding": "valid",
                                                  "strides": [2, 2], "data_format": "channels_last"}},
        conv_cfg("conv_parts", 4, 3, "relu"),
        {"class_name": "MaxPooling2D", "config": {"name": "pool2", "trainable": True, "dtype": "float32",
                                                  "pool_size": [2, 2], "padding": "valid",
                                                  "strides": [2, 2], "data_format": "channels_last"}},
        {"class_name": "GlobalAveragePooling2D", "config": {"name": "gap", "trainable": True,
                                                            "dtype": "float32",
                                                            "data_format": "channels_last"}},
        {"class_name": "Dense", "config": {"name": "scores", "trainable": True, "dtype": "float32",
                                           "units": 4, "activation": "softmax", "use_bias": True}},
    ]
    config = {"class_name": "Sequential", "config": {"name": "cnnviz_demo", "layers": layers}}
    k1, b1 = first_features()
    k2, b2 = second_parts()
    weights = {
        "conv_features": [("kernel:0", k1), ("bias:0", b1)],
        "conv_parts": [("kernel:0", k2), ("bias:0", b2)],
        # Edges are everywhere in a photo; colours are rarer: weigh them up.
        "scores": [("kernel:0", np.diag([4.0, 16.0, 16.0, 16.0]).astype(np.float32)),
                   ("bias:0", np.zeros(4, np.float32))],
    }
    names = ["conv_features", "pool1", "conv_parts", "pool2", "gap", "scores"]
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        f.attrs["keras_version"] = np.bytes_("2.4.0")
        f.attrs["backend"] = np.bytes_("tensorflow")
        f.attrs["model_config"] = np.bytes_(json.dumps(config))
        g = f.create_group("model_weights")
        g.attrs["layer_names"] = np.array([n.encode() for n in names])
        g.attrs["backend"] = np.bytes_("tensorflow")
        g.attrs["keras_version"] = np.bytes_("2.4.0")
        for n in names:
            lg = g.create_group(n)
            ws = weights.get(n, [])
            lg.attrs["weight_names"] = np.array([("%s/%s" % (n, w)).encode() for w, _ in ws],
                                                dtype="S" if ws else "f4")
            for w, a in ws:
                lg.create_dataset("%s/%s" % (n, w), data=a)


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def draw_scene():
    """A gray card with a red disc, a blue square, a green bar and stripes."""
    n = 192
    img = np.full((n, n, 3), 150, np.float32)
    y, x = np.mgrid[0:n, 0:n]
    img[(x - 52) ** 2 + (y - 52) ** 2 < 30 ** 2] = [220, 40, 40]
    img[(x > 110) & (x < 170) & (y > 20) & (y < 80)] = [40, 70, 210]
    img[(x > 20) & (x < 90) & (y > 120) & (y < 140)] = [40, 180, 60]
    stripes = (x > 110) & (x < 175) & (y > 110) & (y < 175)
    img[stripes & (((x + y) // 8) % 2 == 0)] = [20, 20, 20]
    img[stripes & (((x + y) // 8) % 2 == 1)] = [240, 240, 240]
    return img.astype(np.uint8)


if __name__ == "__main__":
    write_model(os.path.join(HERE, "demo_model.h5"))
    write_png(os.path.join(HERE, "demo.png"), draw_scene())
    print("wrote demo_model.h5 and demo.png in", HERE)
