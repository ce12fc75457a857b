#!/usr/bin/python3
"""
Writes the hostile-input cases of tests/bad/: one folder per case holding
the input file(s) and an `expect` file read by tests/test_bad_input.c.

    /usr/bin/python3 tests/bad/make_bad.py      (numpy, h5py, zlib)

Every file is built here from scratch (tiny Keras-layout HDF5 files,
.keras zips, PNG/JPEG/.npy bytes), deterministically: running the script
twice gives the same bytes. The `expect` keys:

    kind     model | image | npy | npy_write | cli          (default model)
    warning  a fragment of the model's one warning (status OK); without
             it an OK model must have none
    input    the file handed to the library, relative to the case folder
    status   the status name, e.g. ERR_FORMAT (OK: must open and run)
    message  a fragment the formatted error must contain (repeatable)
    where    a fragment err.where must contain
    weights  the "weights" option (a file in the case folder)
    file     the file the message must name, if not the input
    option   KEY VALUE: another option (repeatable)
    run      nonfinite: the model must load, run, and give NaN/Inf
    args     cli only: arguments after MODEL; {out} is a fresh folder
             that must stay empty
"""
import io
import json
import os
import shutil
import struct
import sys
import zipfile
import zlib

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = None  # seeded per case from its name, so cases are independent
CASES = []


def case(fn):
    CASES.append(fn)
    return fn


# ------------------------------------------------------------ Keras configs

def input_layer(name, shape):
    return {"class_name": "InputLayer",
            "config": {"batch_input_shape": [None] + list(shape),
                       "dtype": "float32", "sparse": False,
                       "ragged": False, "name": name}}


def dense(name, units, **kw):
    cfg = {"name": name, "trainable": True, "dtype": "float32",
           "units": units, "activation": "linear", "use_bias": True}
    cfg.update(kw)
    return {"class_name": "Dense", "config": cfg}


def conv(name, filters, k, **kw):
    cfg = {"name": name, "trainable": True, "dtype": "float32",
           "filters": filters, "kernel_size": [k, k], "strides": [1, 1],
           "padding": "valid", "data_format": "channels_last",
           "dilation_rate": [1, 1], "groups": 1, "activation": "linear",
           "use_bias": True}
    cfg.update(kw)
    return {"class_name": "Conv2D", "config": cfg}


def layer(cls, name, **kw):
    cfg = {"name": name, "trainable": True, "dtype": "float32"}
    cfg.update(kw)
    return {"class_name": cls, "config": cfg}


def sequential(layers):
    return {"class_name": "Sequential",
            "config": {"name": "sequential", "layers": layers}}


def functional(layers, inputs, outputs):
    """layers: (layer dict, [inbound layer names]) pairs."""
    out = []
    for l, inbound in layers:
        l = dict(l)
        l["name"] = l["config"]["name"]
        l["inbound_nodes"] = ([[[n, 0, 0, {}] for n in inbound]]
                              if inbound else [])
        out.append(l)
    return {"class_name": "Functional",
            "config": {"name": "model", "layers": out,
                       "input_layers": [[n, 0, 0] for n in inputs],
                       "output_layers": [[n, 0, 0] for n in outputs]}}


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def dense_weights(name, n_in, units):
    return (name, [(name + "/kernel:0", f32(n_in, units)),
                   (name + "/bias:0", f32(units))])


# ---------------------------------------------------------------- writers

def write_h5(path, config, weights, keras_version="2.4.0",
             config_text=None, layer_names=None):
    """A Keras 2 model.save() file. weights: [(layer, [(wname, array)])]."""
    with h5py.File(path, "w", track_order=False) as f:
        if config is not None or config_text is not None:
            f.attrs["model_config"] = (config_text if config_text is not None
                                       else json.dumps(config))
        f.attrs["keras_version"] = keras_version
        f.attrs["backend"] = "tensorflow"
        mw = f.create_group("model_weights")
        names = [l for l, _ in weights] if layer_names is None else layer_names
        mw.attrs["layer_names"] = np.array([n.encode() for n in names])
        mw.attrs["keras_version"] = keras_version
        mw.attrs["backend"] = "tensorflow"
        for lname, ws in weights:
            g = mw.require_group(lname)
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in ws])
            for wname, arr in ws:
                g.create_dataset(wname, data=arr, track_times=False)


def write_weights_only(path, weights):
    """save_weights(): layer groups at the root, no model_config."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([l.encode() for l, _ in weights])
        f.attrs["keras_version"] = "2.4.0"
        f.attrs["backend"] = "tensorflow"
        for lname, ws in weights:
            g = f.create_group(lname)
            g.attrs["weight_names"] = np.array([w.encode() for w, _ in ws])
            for wname, arr in ws:
                g.create_dataset(wname, data=arr, track_times=False)


def h5_bytes(fill):
    """An HDF5 file image built by fill(h5py.File)."""
    bio = io.BytesIO()
    with h5py.File(bio, "w") as f:
        fill(f)
    return bio.getvalue()


def write_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            zi = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, data)


def k3_weights_h5(vars_by_layer):
    def fill(f):
        g = f.create_group("layers")
        for lname, arrs in vars_by_layer:
            v = g.create_group(lname).create_group("vars")
            v.attrs["name"] = lname
            for i, a in enumerate(arrs):
                v.create_dataset(str(i), data=a, track_times=False)
        f.create_group("vars").attrs["name"] = "sequential"
    return h5_bytes(fill)


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))


def png(width, height, rows=None, color=0):
    """An 8-bit gray (color 0) or RGB (2) PNG; rows: raw scanlines."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    if rows is None:
        rows = b"".join(b"\0" + bytes(width * (3 if color else 1))
                        for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(rows, 9)) +
            png_chunk(b"IEND", b""))


def jpeg_gray(width, height, sof_w=None, sof_h=None):
    """
    A baseline gray JPEG whose every 8x8 block is flat mid-gray: each block
    codes DC difference 0 ('00') and end-of-block ('1010') with the
    standard luminance Huffman tables. sof_w/sof_h override the size the
    header claims.
    """
    def seg(marker, payload):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(payload) + 2) + payload
    dqt = seg(0xdb, b"\x00" + bytes([1] * 64))
    sof = seg(0xc0, struct.pack(">BHHB", 8, sof_h or height, sof_w or width, 1) +
              b"\x01\x11\x00")
    dc_bits = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    dc_vals = list(range(12))
    ac_bits = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d]
    ac_vals = bytes.fromhex(
        "01020300041105122131410613516107227114328191a1082342b1c11552d1f0"
        "2433627282090a161718191a25262728292a3435363738393a43444546474849"
        "4a535455565758595a636465666768696a737475767778797a83848586878889"
        "8a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5"
        "c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8"
        "f9fa")
    dht = seg(0xc4, b"\x00" + bytes(dc_bits) + bytes(dc_vals) +
              b"\x10" + bytes(ac_bits) + ac_vals)
    sos = seg(0xda, b"\x01\x01\x00\x00\x3f\x00")
    blocks = ((width + 7) // 8) * ((height + 7) // 8)
    bits = "001010" * blocks
    bits += "1" * (-len(bits) % 8)
    scan = bytearray()
    for i in range(0, len(bits), 8):
        b = int(bits[i:i + 8], 2)
        scan.append(b)
        if b == 0xff:
            scan.append(0)
    return b"\xff\xd8" + dqt + sof + dht + sos + bytes(scan) + b"\xff\xd9"


def npy(arr, fortran=False):
    bio = io.BytesIO()
    np.lib.format.write_array(bio, np.asfortranarray(arr) if fortran else arr,
                              version=(1, 0))
    return bio.getvalue()


# ------------------------------------------------------------ base models

def base_seq():
    """Input (4,) -> Dense 3 -> Dense 2."""
    return sequential([input_layer("in", [4]), dense("d1", 3), dense("d2", 2)])


def base_weights():
    return [dense_weights("d1", 4, 3), dense_weights("d2", 3, 2)]


def model_case(d, expect, config=None, weights=None, **kw):
    write_h5(os.path.join(d, "model.h5"),
             base_seq() if config is None else config,
             base_weights() if weights is None else weights, **kw)
    return dict({"input": "model.h5"}, **expect)


# --------------------------------------------------------------- the cases

@case
def not_hdf5(d):
    with open(os.path.join(d, "model.h5"), "wb") as f:
        f.write(b"This is not a model, it is a text file.\n")
    return {"input": "model.h5", "status": "ERR_FORMAT",
            "message": ["not a Keras model"]}


@case
def empty_file(d):
    open(os.path.join(d, "model.h5"), "wb").close()
    return {"input": "model.h5", "status": "ERR_FORMAT",
            "message": ["empty"]}


@case
def truncated_hdf5_head(d):
    full = os.path.join(d, "full.h5")
    write_h5(full, base_seq(), base_weights())
    data = open(full, "rb").read()
    os.remove(full)
    with open(os.path.join(d, "model.h5"), "wb") as f:
        f.write(data[:600])
    return {"input": "model.h5", "status": "ERR_FORMAT",
            "message": ["HDF5"]}


@case
def truncated_hdf5_half(d):
    full = os.path.join(d, "full.h5")
    write_h5(full, base_seq(), base_weights())
    data = open(full, "rb").read()
    os.remove(full)
    with open(os.path.join(d, "model.h5"), "wb") as f:
        f.write(data[:len(data) // 2])
    return {"input": "model.h5", "status": "ERR_FORMAT",
            "message": ["HDF5"]}


@case
def weights_only_as_model(d):
    write_weights_only(os.path.join(d, "model.h5"), base_weights())
    return {"input": "model.h5", "status": "ERR_FORMAT",
            "message": ["no model_config", "weights only"],
            "where": "model_config"}


@case
def model_config_not_string(d):
    p = os.path.join(d, "model.h5")
    write_h5(p, base_seq(), base_weights())
    with h5py.File(p, "a") as f:
        f.attrs["model_config"] = np.int32(7)
    return {"input": "model.h5", "status": "ERR_FORMAT",
            "message": ["model_config", "not a string"]}


@case
def json_syntax(d):
    text = json.dumps(base_seq())[:-7]
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["JSON syntax error", "line 1"],
                          "where": "model_config"}, config_text=text)


@case
def json_not_a_model(d):
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["no class_name"]},
                      config_text='[1, 2, 3]')


@case
def json_too_deep(d):
    cfg = base_seq()
    deep = []
    for _ in range(300):
        deep = [deep]
    cfg["config"]["layers"][1]["config"]["kernel_initializer"] = deep
    return model_case(d, {"status": "ERR_LIMIT",
                          "message": ["nesting deeper", "256"],
                          "where": "model_config"}, config=cfg)


@case
def json_over_lowered_limit(d):
    return model_case(d, {"status": "ERR_LIMIT",
                          "message": ["limit of 200"],
                          "option": [("max_json_bytes", "200")]})


@case
def empty_sequential(d):
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["empty Sequential"]},
                      config=sequential([]), weights=[])


@case
def unknown_layer_class(d):
    cfg = base_seq()
    cfg["config"]["layers"][2] = layer("FancyAttention", "fancy")
    return model_case(d, {"status": "ERR_UNSUPPORTED",
                          "message": ["custom layer"],
                          "where": "fancy"},
                      config=cfg, weights=[dense_weights("d1", 4, 3)])


@case
def lambda_layer(d):
    cfg = base_seq()
    cfg["config"]["layers"].insert(2, layer(
        "Lambda", "my_lambda",
        function=["(marshalled Python bytecode)", None, None],
        function_type="lambda", output_shape=None, arguments={}))
    return model_case(d, {"status": "ERR_UNSUPPORTED",
                          "message": ["Python code"],
                          "where": "my_lambda"}, config=cfg)


@case
def two_unsupported_layers(d):
    cfg = base_seq()
    cfg["config"]["layers"].insert(2, layer("Lambda", "lam",
                                            function="x", function_type="raw"))
    cfg["config"]["layers"].append(layer("MyCustomHead", "head"))
    return model_case(d, {"status": "ERR_UNSUPPORTED",
                          "message": ["2 unsupported layers", "'lam'",
                                      "'head'", "MyCustomHead"],
                          "where": "lam"},
                      config=cfg)


@case
def missing_weights(d):
    w = base_weights()
    w[1] = ("d2", [w[1][1][0]])  # bias gone
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["'bias' is missing"], "where": "d2"},
                      weights=w)


@case
def missing_weight_group(d):
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["missing"], "where": "d2"},
                      weights=base_weights()[:1])


@case
def weight_name_without_dataset(d):
    p = os.path.join(d, "model.h5")
    write_h5(p, base_seq(), base_weights())
    with h5py.File(p, "a") as f:
        del f["model_weights/d2/d2/bias:0"]
    return {"input": "model.h5", "status": "ERR_WEIGHTS",
            "message": ["missing"], "where": "d2"}


@case
def extra_weight_in_layer(d):
    w = base_weights()
    w[0][1].append(("d1/gamma:0", f32(3)))
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["gamma", "does not have"],
                          "where": "d1"}, weights=w)


@case
def extra_layer_group(d):
    w = base_weights() + [dense_weights("ghost", 2, 2)]
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["does not contain"],
                          "where": "ghost"}, weights=w)


@case
def wrong_weight_shape(d):
    w = base_weights()
    w[0] = ("d1", [("d1/kernel:0", f32(3, 4)), ("d1/bias:0", f32(3))])
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["has shape (3, 4)", "implies (4, 3)"],
                          "where": "d1"}, weights=w)


@case
def weight_string_dtype(d):
    w = base_weights()
    w[1] = ("d2", [("d2/kernel:0", np.array([b"abc"] * 6).reshape(3, 2)),
                   ("d2/bias:0", f32(2))])
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["not numeric"], "where": "d2"},
                      weights=w)


@case
def weight_compound_dtype(d):
    w = base_weights()
    w[1] = ("d2", [("d2/kernel:0", f32(3, 2)),
                   ("d2/bias:0", np.zeros(2, dtype=[("re", "<f4"),
                                                    ("im", "<f4")]))])
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["not numeric"], "where": "d2"},
                      weights=w)


@case
def weight_count_mismatch(d):
    # Names without a role are matched by position: three for a Dense.
    w = base_weights()
    w[1] = ("d2", [("d2/w0", f32(3, 2)), ("d2/w1", f32(2)),
                   ("d2/w2", f32(2))])
    return model_case(d, {"status": "ERR_WEIGHTS",
                          "message": ["d2/w2", "does not have"],
                          "where": "d2"}, weights=w)


@case
def weight_count_mismatch_keras(d):
    cfg = {"module": "keras", "class_name": "Sequential",
           "config": {"name": "sequential", "layers": [
               {"module": "keras.layers", "class_name": "InputLayer",
                "config": {"batch_shape": [None, 4], "dtype": "float32",
                           "name": "in"}},
               {"module": "keras.layers", "class_name": "Dense",
                "config": {"name": "d1", "units": 3, "activation": "linear",
                           "use_bias": True}}]}}
    write_zip(os.path.join(d, "model.keras"), [
        ("metadata.json", json.dumps({"keras_version": "3.3.3"})),
        ("config.json", json.dumps(cfg)),
        ("model.weights.h5", k3_weights_h5([("d1", [f32(4, 3), f32(3),
                                                    f32(3)])]))])
    return {"input": "model.keras", "status": "ERR_WEIGHTS",
            "message": ["vars/2", "does not have"], "where": "d1"}


def func_base(inbound_d1=("in",), inbound_d2=("d1",)):
    return functional([(input_layer("in", [4]), None),
                       (dense("d1", 3), list(inbound_d1)),
                       (dense("d2", 2), list(inbound_d2))],
                      ["in"], ["d2"])


@case
def dangling_inbound_node(d):
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["does not exist"], "where": "d2"},
                      config=func_base(inbound_d2=("nowhere",)))


@case
def cyclic_inbound_nodes(d):
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["cycle"], "where": "d1"},
                      config=func_base(inbound_d1=("d2",)))


@case
def output_refers_to_missing_layer(d):
    cfg = func_base()
    cfg["config"]["output_layers"] = [["vanished", 0, 0]]
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["missing layer"],
                          "where": "vanished"}, config=cfg)


@case
def duplicate_layer_names(d):
    cfg = base_seq()
    cfg["config"]["layers"][2]["config"]["name"] = "d1"
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["two layers have this name"],
                          "where": "d1"}, config=cfg)


@case
def unsupported_layer_dtype(d):
    cfg = base_seq()
    cfg["config"]["layers"][2]["config"]["dtype"] = "int32"
    return model_case(d, {"status": "ERR_UNSUPPORTED",
                          "message": ["dtype", "int32"], "where": "d2"},
                      config=cfg)


@case
def unsupported_dtype_policy(d):
    cfg = base_seq()
    cfg["config"]["layers"][1]["config"]["dtype"] = {
        "module": "keras", "class_name": "DTypePolicy",
        "config": {"name": "complex64"}}
    return model_case(d, {"status": "ERR_UNSUPPORTED",
                          "message": ["dtype", "complex64"], "where": "d1"},
                      config=cfg)


@case
def nan_inf_weights(d):
    w = base_weights()
    k = w[0][1][0][1].copy()
    k[0, 0] = np.nan
    k[1, 1] = np.inf
    w[0] = ("d1", [("d1/kernel:0", k), w[0][1][1]])
    return model_case(d, {"status": "OK", "run": "nonfinite",
                          "warning": "layer 'd1': weight 'kernel' holds 1 NaN and 1 infinite"},
                      weights=w)


@case
def absurd_input_dim(d):
    cfg = base_seq()
    cfg["config"]["layers"][0] = input_layer("in", [2 ** 40])
    return model_case(d, {"status": "ERR_LIMIT",
                          "message": ["larger than the limits"],
                          "where": "in"}, config=cfg)


@case
def absurd_dense_units(d):
    cfg = base_seq()
    cfg["config"]["layers"][2]["config"]["units"] = 2 ** 40
    return model_case(d, {"status": "ERR_LIMIT",
                          "message": ["limits"], "where": "d2"},
                      config=cfg)


@case
def absurd_kernel_size(d):
    cfg = sequential([input_layer("in", [6, 6, 1]),
                      conv("c", 2, 2 ** 40)])
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["kernel_size"], "where": "c"},
                      config=cfg, weights=[])


@case
def zero_input_dim(d):
    cfg = base_seq()
    cfg["config"]["layers"][0] = input_layer("in", [0])
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["not a positive integer"],
                          "where": "in"}, config=cfg)


@case
def zero_dense_units(d):
    cfg = base_seq()
    cfg["config"]["layers"][2]["config"]["units"] = 0
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["units"], "where": "d2"},
                      config=cfg)


@case
def zero_sized_conv_output(d):
    # A 5x5 kernel on a 3x3 map with valid padding leaves nothing.
    cfg = sequential([input_layer("in", [3, 3, 1]), conv("c", 2, 5)])
    return model_case(d, {"status": "ERR_SHAPE",
                          "message": ["does not fit"], "where": "c"},
                      config=cfg,
                      weights=[("c", [("c/kernel:0", f32(5, 5, 1, 2)),
                                      ("c/bias:0", f32(2))])])


@case
def conv_zero_strides(d):
    cfg = sequential([input_layer("in", [6, 6, 1]),
                      conv("c", 2, 3, strides=[0, 1])])
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["strides"], "where": "c"},
                      config=cfg,
                      weights=[("c", [("c/kernel:0", f32(3, 3, 1, 2)),
                                      ("c/bias:0", f32(2))])])


@case
def pool_zero_size(d):
    cfg = sequential([input_layer("in", [6, 6, 1]),
                      layer("MaxPooling2D", "p", pool_size=[0, 2],
                            padding="valid", strides=None,
                            data_format="channels_last")])
    return model_case(d, {"status": "ERR_FORMAT",
                          "message": ["pool_size"], "where": "p"},
                      config=cfg, weights=[])


@case
def reshape_wrong_count(d):
    cfg = sequential([input_layer("in", [4]),
                      layer("Reshape", "r", target_shape=[3, 2])])
    return model_case(d, {"status": "ERR_SHAPE", "where": "r"},
                      config=cfg, weights=[])


@case
def concat_mismatched_shapes(d):
    cfg = functional([(input_layer("a", [4, 4, 2]), None),
                      (input_layer("b", [3, 4, 2]), None),
                      (layer("Concatenate", "cat", axis=-1), ["a", "b"])],
                     ["a", "b"], ["cat"])
    return model_case(d, {"status": "ERR_SHAPE", "where": "cat"},
                      config=cfg, weights=[])


@case
def ok_conv_1x1_without_scratch(d):
    # Found by fuzz_config: a 1x1 convolution needs no scratch, and the
    # kernel offset a NULL scratch pointer (undefined, clang's UBSan).
    cfg = sequential([input_layer("in", [4, 5, 3]), layer("Flatten", "f"),
                      layer("Reshape", "r", target_shape=[5, 4, 3]),
                      conv("c", 2, 1, dilation_rate=[2, 1])])
    return model_case(d, {"status": "OK"}, config=cfg,
                      weights=[("c", [("c/kernel:0", f32(1, 1, 3, 2)),
                                      ("c/bias:0", f32(2))])])


@case
def too_many_layers(d):
    return model_case(d, {"status": "ERR_LIMIT",
                          "message": ["max_layers"],
                          "option": [("max_layers", "2")]})


@case
def models_nested_too_deep(d):
    inner = dense("d", 2)
    for i in range(40):
        inner = {"class_name": "Sequential",
                 "config": {"name": "s%d" % i, "layers": [inner]}}
    cfg = sequential([input_layer("in", [4]), inner])
    return model_case(d, {"status": "ERR_LIMIT",
                          "message": ["nested more than"]},
                      config=cfg, weights=[])


@case
def keras_corrupt_zip(d):
    good = io.BytesIO()
    write_zip(good, [("config.json", json.dumps(base_seq()))])
    data = bytearray(good.getvalue())
    data[len(data) // 2:] = b"\x00" * (len(data) - len(data) // 2)
    with open(os.path.join(d, "model.keras"), "wb") as f:
        f.write(bytes(data))
    return {"input": "model.keras", "status": "ERR_FORMAT",
            "message": [".keras archive"]}


@case
def keras_without_config(d):
    write_zip(os.path.join(d, "model.keras"), [
        ("metadata.json", json.dumps({"keras_version": "3.3.3"})),
        ("model.weights.h5", k3_weights_h5([]))])
    return {"input": "model.keras", "status": "ERR_FORMAT",
            "message": ["no config.json"]}


@case
def keras_without_weights(d):
    write_zip(os.path.join(d, "model.keras"), [
        ("metadata.json", json.dumps({"keras_version": "3.3.3"})),
        ("config.json", json.dumps(base_seq()))])
    return {"input": "model.keras", "status": "ERR_FORMAT",
            "message": ["no model.weights.h5"]}


@case
def keras_weights_not_hdf5(d):
    write_zip(os.path.join(d, "model.keras"), [
        ("config.json", json.dumps(base_seq())),
        ("model.weights.h5", b"certainly not HDF5" * 10)])
    return {"input": "model.keras", "status": "ERR_FORMAT",
            "message": ["HDF5"]}


@case
def keras_config_not_json(d):
    write_zip(os.path.join(d, "model.keras"), [
        ("config.json", b"{\"class_name\": \"Sequential\", \"config\": {"),
        ("model.weights.h5", k3_weights_h5([]))])
    return {"input": "model.keras", "status": "ERR_FORMAT",
            "message": ["JSON syntax error"]}


@case
def keras_config_over_limit(d):
    write_zip(os.path.join(d, "model.keras"), [
        ("config.json", json.dumps(base_seq())),
        ("model.weights.h5", k3_weights_h5([]))])
    return {"input": "model.keras", "status": "ERR_LIMIT",
            "message": ["larger than the limit of 100 bytes"],
            "where": "config.json", "option": [("max_json_bytes", "100")]}


@case
def ok_utf8_fixed_length_attributes(d):
    # Keras writes model_config as bytes, h5py writes str as UTF-8; here a
    # fixed-length UTF-8 model_config and non-ASCII layer names must load
    # (regression: libhdf5 converts no character sets).
    cfg = sequential([input_layer("entrée", [4]), dense("dense_ü", 3)])
    p = os.path.join(d, "model.h5")
    write_h5(p, cfg, [dense_weights("dense_ü", 4, 3)])
    text = json.dumps(cfg, ensure_ascii=False).encode()
    with h5py.File(p, "a") as f:
        del f.attrs["model_config"]
        f.attrs.create("model_config", text,
                       dtype=h5py.string_dtype("utf-8", len(text)))
    return {"input": "model.h5", "status": "OK"}


@case
def json_with_bad_weights_file(d):
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(base_seq(), f)
    with open(os.path.join(d, "w.h5"), "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    return {"input": "model.json", "weights": "w.h5", "file": "w.h5",
            "status": "ERR_FORMAT", "message": ["HDF5"]}


@case
def json_with_missing_weights_file(d):
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(base_seq(), f)
    return {"input": "model.json", "weights": "absent.h5", "file": "absent.h5",
            "status": "ERR_IO", "message": ["No such file"]}


# ------------------------------------------------------------------ images

@case
def png_huge_header(d):
    # The header claims 100000 x 100000; the data is a few bytes.
    data = png(100000, 100000, rows=b"\0" * 64)
    with open(os.path.join(d, "image.png"), "wb") as f:
        f.write(data)
    return {"kind": "image", "input": "image.png", "status": "ERR_LIMIT",
            "message": ["100000x100000", "max_pixels"]}


@case
def png_corrupt_data(d):
    data = bytearray(png(16, 16, color=2))
    at = data.index(b"IDAT") + 6
    for i in range(at, at + 12):
        data[i] ^= 0x5a
    with open(os.path.join(d, "image.png"), "wb") as f:
        f.write(bytes(data))
    return {"kind": "image", "input": "image.png", "status": "ERR_IMAGE",
            "message": ["PNG"]}


@case
def png_truncated(d):
    data = png(16, 16, color=2)
    with open(os.path.join(d, "image.png"), "wb") as f:
        f.write(data[:len(data) - 30])
    return {"kind": "image", "input": "image.png", "status": "ERR_IMAGE",
            "message": ["PNG"]}


@case
def jpeg_huge_header(d):
    with open(os.path.join(d, "image.jpg"), "wb") as f:
        f.write(jpeg_gray(16, 16, sof_w=65000, sof_h=65000))
    return {"kind": "image", "input": "image.jpg", "status": "ERR_LIMIT",
            "message": ["65000x65000", "max_pixels"]}


@case
def jpeg_truncated(d):
    data = jpeg_gray(64, 64)
    sos = data.index(b"\xff\xda")
    with open(os.path.join(d, "image.jpg"), "wb") as f:
        f.write(data[:sos + 14 + 10])
    return {"kind": "image", "input": "image.jpg", "status": "ERR_IMAGE",
            "message": ["truncated JPEG"]}


@case
def jpeg_corrupt_data(d):
    # Scan bytes that decode to an impossible Huffman code.
    data = bytearray(jpeg_gray(64, 64))
    sos = data.index(b"\xff\xda") + 10
    data[sos:sos + 8] = b"\xfe\xfe\xfe\xfe\xfe\xfe\xfe\xfe"
    with open(os.path.join(d, "image.jpg"), "wb") as f:
        f.write(bytes(data))
    return {"kind": "image", "input": "image.jpg", "status": "ERR_IMAGE",
            "message": ["JPEG"]}


@case
def webp_named_jpg(d):
    vp8 = b"VP8 " + struct.pack("<I", 10) + bytes(10)
    with open(os.path.join(d, "image.jpg"), "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(vp8)) + b"WEBP" + vp8)
    return {"kind": "image", "input": "image.jpg", "status": "ERR_IMAGE",
            "message": ["WebP"]}


@case
def image_empty(d):
    open(os.path.join(d, "image.png"), "wb").close()
    return {"kind": "image", "input": "image.png", "status": "ERR_IMAGE",
            "message": ["empty"]}


@case
def image_unknown_bytes(d):
    with open(os.path.join(d, "image.jpg"), "wb") as f:
        f.write(b"\x01\x02\x03\x04garbage")
    return {"kind": "image", "input": "image.jpg", "status": "ERR_IMAGE",
            "message": ["not a JPEG or PNG"]}


# -------------------------------------------------------------------- .npy

@case
def npy_bad_magic(d):
    data = bytearray(npy(np.zeros((2, 3), np.float32)))
    data[1:6] = b"NUMPX"
    with open(os.path.join(d, "data.npy"), "wb") as f:
        f.write(bytes(data))
    return {"kind": "npy", "input": "data.npy", "status": "ERR_FORMAT",
            "message": ["not a .npy file"]}


@case
def npy_fortran_order(d):
    with open(os.path.join(d, "data.npy"), "wb") as f:
        f.write(npy(np.arange(6, dtype=np.float32).reshape(2, 3), True))
    return {"kind": "npy", "input": "data.npy", "status": "ERR_FORMAT",
            "message": ["Fortran"]}


@case
def npy_truncated_data(d):
    data = npy(np.zeros((4, 4), np.float32))
    with open(os.path.join(d, "data.npy"), "wb") as f:
        f.write(data[:-10])
    return {"kind": "npy", "input": "data.npy", "status": "ERR_FORMAT",
            "message": ["truncated"]}


@case
def npy_truncated_header(d):
    data = npy(np.zeros((4, 4), np.float32))
    with open(os.path.join(d, "data.npy"), "wb") as f:
        f.write(data[:40])
    return {"kind": "npy", "input": "data.npy", "status": "ERR_FORMAT",
            "message": ["header"]}


@case
def npy_complex_dtype(d):
    with open(os.path.join(d, "data.npy"), "wb") as f:
        f.write(npy(np.zeros(3, np.complex64)))
    return {"kind": "npy", "input": "data.npy", "status": "ERR_FORMAT",
            "message": ["dtype"]}


@case
def npy_huge_shape(d):
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"
    hdr += " " * (-(len(hdr) + 11) % 64) + "\n"
    with open(os.path.join(d, "data.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) +
                hdr.encode() + bytes(16))
    return {"kind": "npy", "input": "data.npy", "status": "ERR_LIMIT",
            "message": ["too large"]}


@case
def npy_write_parent_is_file(d):
    with open(os.path.join(d, "blocker"), "w") as f:
        f.write("a file where a folder should be\n")
    return {"kind": "npy_write", "input": "blocker/out.npy",
            "status": "ERR_IO", "message": ["cannot write"]}


@case
def npy_write_missing_folder(d):
    return {"kind": "npy_write", "input": "no/such/folder/out.npy",
            "status": "ERR_IO", "message": ["cannot write"]}


@case
def npy_write_onto_folder(d):
    # out.npy is a folder: the temporary file is written, the rename fails
    # and the temporary file must be removed again.
    os.makedirs(os.path.join(d, "out.npy"))
    with open(os.path.join(d, "out.npy", ".keep"), "w") as f:
        f.write("keeps this folder in git\n")
    return {"kind": "npy_write", "input": "out.npy", "status": "ERR_IO",
            "message": ["cannot write"]}


# --------------------------------------------------------------------- CLI

@case
def cli_wrong_input_channels(d):
    cfg = sequential([input_layer("in", [4, 4, 1]), conv("c", 2, 3)])
    write_h5(os.path.join(d, "model.h5"), cfg,
             [("c", [("c/kernel:0", f32(3, 3, 1, 2)), ("c/bias:0", f32(2))])])
    with open(os.path.join(d, "input.npy"), "wb") as f:
        f.write(npy(np.zeros((1, 4, 4, 3), np.float32)))
    return {"kind": "cli", "input": "model.h5", "status": "FAIL",
            "message": ["input.npy", "shape"],
            "args": "--input-npy input.npy --npy-dir {out}"}


@case
def cli_bad_eval_value(d):
    # found by fuzz_args: the message quoted the bad word after freeing it
    write_h5(os.path.join(d, "model.h5"), base_seq(), base_weights())
    return {"kind": "cli", "input": "model.h5", "status": "FAIL",
            "message": ["--eval takes deletion, insertion, avgdrop, not 'bogus'"],
            "args": "x.png -o {out} --cam gradcam --eval deletion,bogus"}


# ------------------------------------------------------------------- main

def write_expect(d, e):
    lines = ["kind " + e.get("kind", "model"), "input " + e["input"],
             "status " + e["status"]]
    for m in e.get("message", []):
        lines.append("message " + m)
    if "where" in e:
        lines.append("where " + e["where"])
    if "weights" in e:
        lines.append("weights " + e["weights"])
    if "file" in e:
        lines.append("file " + e["file"])
    for k, v in e.get("option", []):
        lines.append("option %s %s" % (k, v))
    if "run" in e:
        lines.append("run " + e["run"])
    if "warning" in e:
        lines.append("warning " + e["warning"])
    if "args" in e:
        lines.append("args " + e["args"])
    with open(os.path.join(d, "expect"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    only = set(sys.argv[1:])
    total = 0
    for fn in CASES:
        if only and fn.__name__ not in only:
            continue
        global RNG
        RNG = np.random.default_rng(zlib.crc32(fn.__name__.encode()))
        d = os.path.join(HERE, fn.__name__)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        write_expect(d, fn(d))
        for root, _, files in os.walk(d):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print("%d cases, %d bytes" % (len(CASES), total))
    if total > 1 << 20:
        sys.exit("tests/bad is over 1 MB")


if __name__ == "__main__":
    main()
