/*
 * libcnnviz -- run Keras CNN models (.h5, .keras, JSON + weights) in pure C and
 * look at every intermediate tensor.
 *
 * This header is the whole public interface and its reference manual.
 *
 * Conventions
 *   - Every fallible call returns an int status: CNNVIZ_OK (0) or a negative
 *     CNNVIZ_ERR_* code, and fills the optional `struct cnnviz_error *err`
 *     (file, where = layer name or HDF5 path, one-line message).
 *   - Handles are opaque. Every *_free() accepts NULL.
 *   - Ownership is stated on every call: "new" means the caller frees it,
 *     "borrowed" means it stays owned by the library and valid for the
 *     stated lifetime.
 *   - Shapes are int64_t, sizes size_t. Tensors are float32, C order, in the
 *     layout Keras itself holds them (NHWC for channels_last models), batch
 *     dimension first.
 *
 * Thread safety
 *   A loaded cnnviz_model is immutable: any number of threads may use it at
 *   once, each through its own cnnviz_session. A session is used by one
 *   thread at a time. cnnviz_options is not shared-safe while being modified.
 *   Models may be opened from several threads at once: libcnnviz serialises
 *   its own libhdf5 calls (Debian's libhdf5 is not thread-safe), so an
 *   application that calls libhdf5 itself must not do so while a model is
 *   being opened. Other calls share no state; hooks run on the thread that
 *   called cnnviz_session_run(). Results are deterministic: the same input
 *   gives bit-identical outputs (and PNG bytes) in every run, session and
 *   thread.
 *
 * Untrusted files
 *   libcnnviz checks every limit it can before allocating (see the
 *   "max_*" options) and its own parsers are fuzzed. The HDF5 container
 *   itself is decoded by libhdf5, and fuzzing found crafted files that make
 *   libhdf5 1.10 crash, loop or allocate without bound inside its own code.
 *   Until that is fixed upstream, open .h5/.keras files from untrusted
 *   sources in a separate process with a time and memory limit.
 */
#ifndef CNNVIZ_H
#define CNNVIZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CNNVIZ_VERSION_STRING "0.1.0"

/* Largest tensor rank, batch dimension included. */
#define CNNVIZ_MAX_RANK 8

/*
 * Status codes: one list, expanded into the enum, cnnviz_strerror() and
 * cnnviz_status_name().
 */
#define CNNVIZ_STATUS_LIST(X)                                                  \
	X(OK, 0, "success")                                                    \
	X(ERR_ARG, -1, "invalid argument")                                     \
	X(ERR_NOMEM, -2, "out of memory")                                      \
	X(ERR_IO, -3, "cannot open, read or write a file")                     \
	X(ERR_FORMAT, -4, "malformed or unrecognised model file")              \
	X(ERR_UNSUPPORTED, -5, "unsupported layer, option or file feature")    \
	X(ERR_SHAPE, -6, "tensor shapes do not fit")                           \
	X(ERR_WEIGHTS, -7, "missing, extra or mis-shaped weights")             \
	X(ERR_LIMIT, -8, "a limit on untrusted input was exceeded")            \
	X(ERR_STOPPED, -9, "the hook stopped the run")                         \
	X(ERR_IMAGE, -10, "cannot decode the image")                           \
	X(ERR_INTERNAL, -11, "internal error (a bug in libcnnviz)")

enum cnnviz_status {
#define CNNVIZ__ENUM(name, value, text) CNNVIZ_##name = value,
	CNNVIZ_STATUS_LIST(CNNVIZ__ENUM)
#undef CNNVIZ__ENUM
};

/* A one-line description of a status code; never NULL (unknown codes too). */
const char *cnnviz_strerror(int code);
/* The code's symbolic name without prefix, e.g. "ERR_SHAPE"; never NULL. */
const char *cnnviz_status_name(int code);

/*
 * Filled by every fallible call when non-NULL. On success `code` is
 * CNNVIZ_OK and the strings are empty.
 */
struct cnnviz_error {
	int code;
	char file[256];    /* the file concerned, if any */
	char where[256];   /* layer name, HDF5 object path, option name ... */
	char message[512]; /* the reason, one line */
};

/*
 * Writes "file: where: message" (parts that are empty are left out) into
 * buf, always NUL-terminated. Returns buf.
 */
char *cnnviz_error_format(const struct cnnviz_error *err, char *buf,
			  size_t size);

/* ------------------------------------------------------------------------
 * Options: set by key, so the signatures below never grow.
 *
 * Keys understood by cnnviz_model_open*():
 *   "weights"            path of the weights .h5 when the model is a JSON
 *                        architecture file (default: <stem>.weights.h5 or
 *                        <stem>.h5 next to it)
 *   "max_layers"         most layers a model may have      (default 10000)
 *   "max_dim"            largest single dimension           (default 1<<20)
 *   "max_elements"       most elements in one tensor, batch 1
 *                                                          (default 1<<28)
 *   "max_weight_bytes"   most bytes of weights             (default 4 GiB)
 *   "max_json_bytes"     largest model_config text        (default 64 MiB)
 *   "max_json_depth"     deepest JSON nesting                 (default 256)
 * Keys understood by cnnviz_session_new():
 *   "threads"            threads a run uses; 0 = all cores, 1 = only the
 *                        caller's                              (default 0)
 *   "profile"            1: time every step of a run (see
 *                        cnnviz_session_step_time())            (default 0)
 * Unknown keys are an error (CNNVIZ_ERR_ARG) at set time.
 * ---------------------------------------------------------------------- */
typedef struct cnnviz_options cnnviz_options;

/* *out: new. */
int cnnviz_options_new(cnnviz_options **out);
void cnnviz_options_free(cnnviz_options *opts);
/* Copies key and value. Numbers are given as decimal strings. */
int cnnviz_options_set(cnnviz_options *opts, const char *key,
		       const char *value, struct cnnviz_error *err);
/* The value set for key, or NULL if unset. Borrowed until it is set
   again or opts is freed. */
const char *cnnviz_options_get(const cnnviz_options *opts, const char *key);
/* The i-th key that was set (in the order first set), or NULL past the
   end: for recording every option used. Borrowed. */
const char *cnnviz_options_key(const cnnviz_options *opts, int i);

/* ------------------------------------------------------------------------
 * Models
 * ---------------------------------------------------------------------- */
typedef struct cnnviz_model cnnviz_model;

/*
 * Opens a Keras model: a full-model HDF5 file (.h5/.hdf5, Keras 1, 2 or 3
 * legacy format), a Keras 3 .keras zip, or an architecture .json (with the
 * "weights" option). The format is recognised by content, not by name.
 * Every layer is validated, shapes inferred and weights loaded here; a
 * model that opens can always be run. opts may be NULL.
 * *out: new, free with cnnviz_model_free().
 */
int cnnviz_model_open(const char *path, const cnnviz_options *opts,
		      cnnviz_model **out, struct cnnviz_error *err);

/*
 * The same from bytes already in memory (an HDF5 file image or a .keras
 * zip). `name` is only used in error messages. `data` is not retained.
 */
int cnnviz_model_open_memory(const void *data, size_t size, const char *name,
			     const cnnviz_options *opts, cnnviz_model **out,
			     struct cnnviz_error *err);

void cnnviz_model_free(cnnviz_model *model);

/* Layer flags (struct cnnviz_layer_info.flags). */
#define CNNVIZ_LAYER_INPUT 0x1u     /* a model input */
#define CNNVIZ_LAYER_OUTPUT 0x2u    /* a model output */
#define CNNVIZ_LAYER_CONV 0x4u      /* a convolution of some kind */
#define CNNVIZ_LAYER_CONTAINER 0x8u /* a nested model; aliases its output */
#define CNNVIZ_LAYER_SPATIAL 0x10u  /* output is an image-like map, rank 4 */
#define CNNVIZ_LAYER_CHANNELS_FIRST 0x20u /* ... held as (C,H,W), not (H,W,C) */

struct cnnviz_layer_info {
	int index;              /* execution order, 0 = first input */
	const char *name;       /* borrowed; nested: "outer/inner"; the
				   k-th call of a shared layer: "name#k" */
	const char *class_name; /* borrowed; as written in the file */
	unsigned flags;         /* CNNVIZ_LAYER_* */
	int rank;               /* output rank, batch included */
	int64_t shape[CNNVIZ_MAX_RANK]; /* shape[0] is the batch: -1 here,
					   the real batch in a hook */
	int64_t params;   /* parameter count, as Keras' summary counts it */
	int64_t flops;    /* per sample: 2 x multiply-adds of its kernels
			     (conv, dense); 0 for other layers */
	int n_inputs;     /* layers whose outputs this layer reads */
	const int *inputs; /* borrowed: their indices */
	int alias_of;     /* containers: index of the layer whose output this
			     is; otherwise -1 */
};

int cnnviz_model_layer_count(const cnnviz_model *model);
/* info: filled with borrowed pointers valid while the model lives. */
int cnnviz_model_layer(const cnnviz_model *model, int index,
		       struct cnnviz_layer_info *info);
/* Index of the layer with this name, or -1. */
int cnnviz_model_find_layer(const cnnviz_model *model, const char *name);
int cnnviz_model_input_count(const cnnviz_model *model);
int cnnviz_model_output_count(const cnnviz_model *model);
/* Layer index of the i-th model input / output, or -1. */
int cnnviz_model_input_layer(const cnnviz_model *model, int i);
int cnnviz_model_output_layer(const cnnviz_model *model, int i);
/* Keras version recorded in the file ("2.4.0"), or "" if none. Borrowed. */
const char *cnnviz_model_keras_version(const cnnviz_model *model);
/*
 * What a loaded model has that is not an error but should be known:
 * weights holding NaN or infinite values, naming the layer and weight
 * (such a model loads and runs, as in Keras, but what depends on those
 * weights comes out NaN or infinite). The i-th text, or NULL past the
 * end; at most 32, the last one then counting the rest. Borrowed, lives
 * with the model.
 */
const char *cnnviz_model_warning(const cnnviz_model *model, int i);
/* Total parameter count. */
int64_t cnnviz_model_param_count(const cnnviz_model *model);

/*
 * The registry of supported Keras layer classes, for --list-layers and
 * documentation: the i-th class name, or NULL past the end. Borrowed.
 */
const char *cnnviz_layer_class(int i);
/* What the i-th class runs as ("conv2d", "identity" ...), or NULL. */
const char *cnnviz_layer_class_kind(int i);

/* ------------------------------------------------------------------------
 * Running
 * ---------------------------------------------------------------------- */
struct cnnviz_tensor {
	int rank;                       /* batch included */
	int64_t shape[CNNVIZ_MAX_RANK]; /* shape[0] = batch */
	size_t count;                   /* product of shape */
	const float *data;              /* borrowed, see the call */
};

/*
 * Called once per layer, in execution order, right after the layer ran,
 * with its output exactly as Keras returns it. `out` and its data are
 * borrowed until the hook returns. Returning non-zero stops the run, which
 * then returns CNNVIZ_ERR_STOPPED. No hook is called after an error.
 */
typedef int (*cnnviz_hook)(const struct cnnviz_layer_info *layer,
			   const struct cnnviz_tensor *out, void *user);

typedef struct cnnviz_session cnnviz_session;

/*
 * A run context for batches of up to max_batch samples: every buffer a run
 * needs is planned and allocated here, so a run allocates nothing.
 * The model must outlive the session. opts may be NULL.
 * *out: new, free with cnnviz_session_free().
 */
int cnnviz_session_new(const cnnviz_model *model, int64_t max_batch,
		       const cnnviz_options *opts, cnnviz_session **out,
		       struct cnnviz_error *err);
void cnnviz_session_free(cnnviz_session *session);

/*
 * Runs the model on `batch` samples (1..max_batch). inputs[i] is the i-th
 * model input: batch x the input layer's shape, float32, Keras layout; it
 * is only read, and may be reused once the call returns. hook may be NULL.
 */
int cnnviz_session_run(cnnviz_session *session, const float *const *inputs,
		       int64_t batch, cnnviz_hook hook, void *user,
		       struct cnnviz_error *err);

/*
 * The i-th model output of the last successful run. out->data is borrowed
 * until the next run or cnnviz_session_free().
 */
int cnnviz_session_output(const cnnviz_session *session, int i,
			  struct cnnviz_tensor *out);

/*
 * Where the time of the last run went, for a session made with the option
 * "profile" set to 1 (otherwise no clock is read and this returns
 * CNNVIZ_ERR_ARG). A run without a hook fuses layers into steps: a
 * BatchNormalization, an activation or a residual Add into the conv or
 * dense layer before it, a ZeroPadding2D into the conv after it, a
 * DepthwiseConv2D into the 1x1 conv reading it. *step is the layer whose
 * step computed `layer`'s output -- `layer` itself, the layer it was fused
 * into, or -1 for layers that compute nothing (inputs, Dropout and other
 * aliases) -- and *ms the time of `layer`'s own step (0 unless *step is
 * `layer`). A run with a hook has one step per layer, the hook excluded.
 */
int cnnviz_session_step_time(const cnnviz_session *session, int layer,
			     double *ms, int *step);

/*
 * Convenience for single-input models: a session of `batch`, one run, the
 * first output copied into output[0..output_count) (output_count must be at
 * least its size). Allocates per call; keep a session for repeated runs.
 */
int cnnviz_run(const cnnviz_model *model, const float *input, int64_t batch,
	       cnnviz_hook hook, void *user, float *output,
	       size_t output_count, struct cnnviz_error *err);

/* ------------------------------------------------------------------------
 * .npy files (float32 in memory; float16/32/64 and int types on read)
 * ---------------------------------------------------------------------- */

/*
 * Reads a C-order .npy array. *data: new, free with cnnviz_free().
 * shape gets *rank entries (at most CNNVIZ_MAX_RANK).
 */
int cnnviz_npy_read(const char *path, float **data, int *rank,
		    int64_t shape[CNNVIZ_MAX_RANK], struct cnnviz_error *err);

/*
 * Writes a float32 C-order .npy file atomically, as cnnviz_file_write().
 */
int cnnviz_npy_write(const char *path, const float *data, int rank,
		     const int64_t *shape, struct cnnviz_error *err);

/*
 * Writes size bytes to path whole or not at all, the way every file the
 * library writes (.npy, PNG) is written: to a hidden temporary name in the
 * same folder (mode 0666 under the umask), flushed to disk, then renamed
 * over path. On error path is untouched and no temporary is left.
 */
int cnnviz_file_write(const char *path, const void *data, size_t size,
		      struct cnnviz_error *err);

/* Frees memory that a cnnviz_* call returned as "new" raw memory. */
void cnnviz_free(void *ptr);

/* ------------------------------------------------------------------------
 * Images and pictures
 *
 * Photos in (JPEG through libjpeg-turbo, PNG through libpng), model input
 * tensors out; feature maps in, RGB pictures and PNG files out. A file's
 * format is recognised by its first bytes, never by its name; WebP, GIF,
 * BMP, TIFF, HEIF/AVIF, JPEG 2000, JPEG XL, ICO, PNM, QOI, PSD and .npy are
 * recognised and refused by name (CNNVIZ_ERR_IMAGE).
 *
 * Option keys (opts may be NULL everywhere: all defaults):
 *  Decoding
 *   "max_pixels"  most pixels (width x height) an image may have, checked
 *                 from the file header before any pixel memory is
 *                 allocated (CNNVIZ_ERR_LIMIT); also the largest picture
 *                 the renderers draw               (default 100000000)
 *   "png_alpha"   drop | black | white: a PNG alpha channel is dropped (as
 *                 PIL's convert("RGB") -- hence Keras' load_img -- and
 *                 OpenCV do) or composited on black or white
 *                                                        (default drop)
 *  Preprocessing (cnnviz_image_to_tensor)
 *   "crop"        none | center: first cut the largest centred region with
 *                 the target's aspect ratio              (default none)
 *   "resize"      bilinear | nearest | area           (default bilinear)
 *                 bilinear: half-pixel centres, edge samples clamped, no
 *                   antialiasing (OpenCV INTER_LINEAR, tf.image.resize
 *                   bilinear with half_pixel_centers);
 *                 nearest: the input pixel under the output pixel's centre,
 *                   floor((i + 0.5) * in / out) (PIL NEAREST, which Keras'
 *                   load_img uses by default);
 *                 area: each output pixel is the mean of the input area it
 *                   covers, with exact fractional weights (a box filter:
 *                   use it to shrink; enlarging with it is nearly nearest)
 *   "preprocess"  y = x * scale[c] + offset[c], x in 0..255 (default unit)
 *                   unit       x / 255                      -> [0, 1]
 *                   mobilenet  x / 127.5 - 1                -> [-1, 1]
 *                   caffe      BGR channel order, ImageNet means
 *                              103.939, 116.779, 123.68 (B, G, R)
 *                              subtracted, no scaling
 *                   torch      (x / 255 - mean) / std, mean 0.485, 0.456,
 *                              0.406, std 0.229, 0.224, 0.225 (R, G, B)
 *                   raw        x, 0..255
 *                 caffe and torch need 3 channels.
 *   "scale", "offset"  one number, or one per channel (in the tensor's
 *                 channel order) separated by commas: replace the
 *                 preset's scale / offset
 *  Feature-map grids (cnnviz_render_grid)
 *   "cmap"        viridis | magma | turbo | jet | gray   (default viridis)
 *   "cols"        tiles per row, 1..256                     (default 8)
 *   "norm"        channel | layer | global | fixed:a,b   (default channel)
 *                   channel: each tile spans its own min..max
 *                   layer:   every tile spans the tensor's min..max
 *                   global:  every tile spans "global_range" (the caller's
 *                            range over all the layers of a run)
 *                   fixed:a,b  every tile spans a..b (a < b)
 *   "global_range" "a,b", needed by norm global
 *   "upscale"     integer zoom of each map, 0..64; 0 = automatic: the
 *                 smallest zoom making a tile's longer side >= 64 pixels
 *                                                           (default 0)
 *   "separator"   pixels between tiles and around the grid, 0..16
 *                                                           (default 1)
 *   "legend"      0 | 1: the legend strip under the grid    (default 1)
 *  Overlays (cnnviz_render_overlay)
 *   "alpha"       weight of the colour, 0..1                (default 0.4)
 *   "overlay_cmap" as "cmap"                                 (default jet)
 *   "overlay_range" "a,b": the values mapped to the colour map's ends
 *                 (default: the map's own min..max)
 * ---------------------------------------------------------------------- */

/* An 8-bit picture: gray (1 channel) or RGB (3), rows top to bottom. */
typedef struct cnnviz_image cnnviz_image;

/*
 * Decodes a JPEG or PNG file into 8-bit gray or RGB.
 *   JPEG: gray JPEGs stay gray, others give RGB (CMYK/YCCK, as Adobe
 *     writes it, is converted); accurate IDCT and fancy upsampling, as
 *     PIL and OpenCV decode. A truncated or corrupt stream -- anything
 *     libjpeg even warns about -- is an error. EXIF orientation is not
 *     applied (Keras' load_img does not apply it either).
 *   PNG: every bit depth and colour type; 16-bit samples are scaled to
 *     8 bits with rounding, palettes expanded, gray stays gray; alpha per
 *     "png_alpha"; gamma chunks are ignored.
 * Errors: CNNVIZ_ERR_IO (unreadable file), CNNVIZ_ERR_IMAGE (unknown,
 * refused, truncated or corrupt data, with the reason), CNNVIZ_ERR_LIMIT
 * ("max_pixels", or a file over 1 GiB). Nothing is printed.
 * *out: new, free with cnnviz_image_free().
 */
int cnnviz_image_load(const char *path, const cnnviz_options *opts,
		      cnnviz_image **out, struct cnnviz_error *err);

/* The same from bytes in memory (borrowed, not retained); `name` is only
   used in error messages (may be NULL). *out: new. */
int cnnviz_image_load_memory(const void *data, size_t size, const char *name,
			     const cnnviz_options *opts, cnnviz_image **out,
			     struct cnnviz_error *err);

/*
 * A width x height image of 1 or 3 channels, with the pixels copied from
 * `pixels` (width * height * channels bytes, rows top to bottom, channels
 * interleaved), or black when pixels is NULL. *out: new.
 */
int cnnviz_image_new(int64_t width, int64_t height, int channels,
		     const uint8_t *pixels, cnnviz_image **out,
		     struct cnnviz_error *err);
/* Frees an image that any call here returned as new; NULL is a no-op. */
void cnnviz_image_free(cnnviz_image *img);

/* Accessors; img is borrowed, and NULL gives 0 / NULL / "". */
int64_t cnnviz_image_width(const cnnviz_image *img);
int64_t cnnviz_image_height(const cnnviz_image *img);
/* 1 (gray) or 3 (RGB). */
int cnnviz_image_channels(const cnnviz_image *img);
/* width * height * channels bytes, rows top to bottom, channels
   interleaved; borrowed while img lives. */
const uint8_t *cnnviz_image_pixels(const cnnviz_image *img);
/* "jpeg" or "png" for decoded images, "" otherwise; borrowed (static). */
const char *cnnviz_image_format(const cnnviz_image *img);

/*
 * An image enlarged `factor` times (1..64) by repeating pixels, e.g. to
 * show a 48x48 network input. img: borrowed. *out: new.
 */
int cnnviz_image_upscale(const cnnviz_image *img, int factor,
			 cnnviz_image **out, struct cnnviz_error *err);

/*
 * The effective per-channel preprocessing for a model input of `channels`
 * (1 or 3): y = x * scale[c] + offset[c] on 0..255 values, c counted in
 * the tensor's order, which is BGR when *bgr is set (caffe). Use it to
 * check the options up front and to record them. opts: borrowed; scale,
 * offset: the caller's arrays of `channels` values, filled.
 */
int cnnviz_image_preprocessing(const cnnviz_options *opts, int channels,
			       double *scale, double *offset, int *bgr,
			       struct cnnviz_error *err);

/*
 * Turns a picture (borrowed) into one model input: crop ("crop"),
 * convert to `channels` (1 = ITU-R BT.601 luma 0.299 R + 0.587 G +
 * 0.114 B, kept as a float; 3 = RGB, gray replicated), resize to height x
 * width ("resize"), then scale ("preprocess", "scale", "offset"). out (the
 * caller's, out_count floats) receives height * width * channels float32
 * values in (H, W, C) order. seen (may be NULL): *seen = new 8-bit image
 * of what the network was shown -- the same pixels before scaling,
 * rounded, in RGB order. opts: borrowed.
 */
int cnnviz_image_to_tensor(const cnnviz_image *img, int64_t height,
			   int64_t width, int channels,
			   const cnnviz_options *opts, float *out,
			   size_t out_count, cnnviz_image **seen,
			   struct cnnviz_error *err);

/*
 * Resizes a float map (height x width, row-major; borrowed) to out_height
 * x out_width into out (the caller's), bilinear with half-pixel centres --
 * the rule the overlays use -- e.g. to bring a CAM map to the input size.
 */
int cnnviz_resize_map(const float *map, int64_t height, int64_t width,
		      float *out, int64_t out_height, int64_t out_width,
		      struct cnnviz_error *err);

/*
 * A colour map by name ("viridis", "magma", "turbo", "jet", "gray"): 256
 * colours as 0xRRGGBB, low to high. Borrowed (static); NULL if unknown.
 */
const uint32_t *cnnviz_colormap(const char *name);

/* Per-channel flags from cnnviz_render_grid(). */
#define CNNVIZ_CHANNEL_FLAT 0x1u      /* no spread: its finite values are
					 all equal (a dead ReLU channel is
					 all 0), or there are none */
#define CNNVIZ_CHANNEL_NONFINITE 0x2u /* holds NaN or infinity */

/*
 * Draws a feature-map tensor data (height, width, channels; borrowed),
 * float32 in (H, W, C) order -- a channels_first tensor must be
 * transposed first -- as a grid of one tile per channel, channel 0 at the
 * top left, "cols" tiles per row, each map zoomed "upscale" times, tiles
 * and border "separator" pixels apart; separators and unused cells are
 * white.
 * Values are normalised per "norm" and coloured with "cmap"; NaN and -inf
 * take the low colour, +inf the high one, and ranges ignore them. A flat
 * channel under norm channel is drawn in the colour map's low colour; a
 * range of zero width (flat layer) does the same, never dividing by zero.
 * With "legend", a strip under the grid gives `label` (may be NULL; e.g.
 * the layer name), the shape, the value range, the normalisation, the
 * number of flat channels and a colour bar, in the built-in 5x7 font (2x
 * when the grid is at least 320 pixels wide); the picture widens to fit
 * the text. flags (may be NULL): caller's array of `channels` bytes, set
 * to CNNVIZ_CHANNEL_* per channel. CNNVIZ_ERR_LIMIT when the picture
 * would exceed "max_pixels". *out: new RGB image.
 */
int cnnviz_render_grid(const float *data, int64_t height, int64_t width,
		       int64_t channels, const char *label,
		       const cnnviz_options *opts, cnnviz_image **out,
		       uint8_t *flags, struct cnnviz_error *err);

/*
 * Lays a scalar map (map_height, map_width; borrowed, e.g. the mean over
 * a layer's channels) over a photo (borrowed): the map is first resized
 * to the photo's size (bilinear, half-pixel centres), then normalised to
 * [0, 1] ("overlay_range", or the map's min..max; a flat map gives 0),
 * coloured ("overlay_cmap") and blended:
 * out = (1 - alpha) * photo + alpha * colour, rounded to nearest.
 * A gray photo is treated as RGB. *out: new RGB image of the photo's size.
 */
int cnnviz_render_overlay(const cnnviz_image *photo, const float *map,
			  int64_t map_height, int64_t map_width,
			  const cnnviz_options *opts, cnnviz_image **out,
			  struct cnnviz_error *err);

/*
 * Writes img (borrowed) as an 8-bit gray or RGB PNG atomically (to a
 * temporary name in the same folder, then renamed; nothing is left behind
 * on error) and deterministically: the same image gives the same bytes
 * with the same zlib (level 6 and filters fixed; no time, text or gamma
 * chunks).
 */
int cnnviz_image_write_png(const cnnviz_image *img, const char *path,
			   struct cnnviz_error *err);

/* ------------------------------------------------------------------------
 * Gradients and explanations
 *
 * An explainer runs the model forward and then backward, from one target
 * unit to every layer: input gradients (d target / d tensor), never weight
 * gradients. On top of it, cnnviz_cam() computes the CAM family and the
 * input-space attribution maps by method name.
 *
 * Target. A unit of one sample's output of a layer (usually a model
 * output): a class index or a regression output. With `minus` >= 0 the
 * target is the contrast out[unit] - out[minus] ("happy vs neutral"). Its
 * value is the score f(x). With the option "target_logit" = 1 and a target
 * layer that ends in a softmax (a Softmax layer, Activation('softmax') or a
 * Conv/Dense with activation='softmax'), f is the logit, the softmax's
 * input, instead of the probability.
 *
 * Derivatives at kinks follow TensorFlow: ReLU passes the gradient where
 * its output is > 0, max pooling sends it to the first maximum of each
 * window (row by row), Maximum/Minimum merges to the first extreme input.
 *
 * Option keys (opts may be NULL: all defaults; parsed as cnnviz_options):
 *  cnnviz_explainer_new()
 *   "target_logit"      0 | 1: targets behind a softmax use the logit  (0)
 *   "threads"           as for sessions
 *  cnnviz_cam()
 *   "scorecam_top"      Score-CAM: only the N channels of highest mean
 *                       activation; 0 = all channels                    (0)
 *   "occlusion_patch"   occlusion: square patch side in input pixels;
 *                       0 = an eighth of the shorter input side, >= 1   (0)
 *   "occlusion_stride"  occlusion: step between patches; 0 = patch / 2 (0)
 *   "occlusion_baseline" occlusion: value written into the patch      (0.0)
 *   "smoothgrad_samples" SmoothGrad: noisy copies averaged            (25)
 *   "smoothgrad_sigma"  SmoothGrad: noise std as a fraction of the
 *                       input's value range (max - min)              (0.15)
 *   "ig_steps"          Integrated Gradients: trapezoid intervals on the
 *                       path; 0 = adaptive: 16, doubled until the
 *                       completeness error is <= 1% (at most 256:
 *                       ReLU6 networks may need more; the error is in
 *                       cnnviz_cam_info, report it)                     (0)
 *   "ig_baseline"       Integrated Gradients: the baseline input, one
 *                       value everywhere                              (0.0)
 *   "seed"              random seed (SmoothGrad noise, random maps,
 *                       weight shuffling)                               (0)
 *   "input_reduce"      input-space maps: channels reduced by max_abs |
 *                       sum_abs | sum | l2 (default: sum for ig, max_abs
 *                       for saliency, smoothgrad, guided_backprop)
 *  cnnviz_faithfulness()
 *   "eval_steps"        pixels removed / inserted in this many steps  (32)
 *   "eval_baseline"     value of removed pixels                       (0.0)
 *   "eval_random"       random maps averaged for the baseline scores   (5)
 *   "seed"
 * ---------------------------------------------------------------------- */
typedef struct cnnviz_explainer cnnviz_explainer;

struct cnnviz_target {
	int layer;     /* whose output holds the unit; -1: the first model
			  output */
	int64_t unit;  /* flat index into one sample's output, Keras layout */
	int64_t minus; /* contrast: unit subtracted from `unit`; -1: none */
};

/*
 * A model, a retaining session and one gradient buffer per layer output,
 * for batches of up to max_batch samples; every buffer a run needs is
 * allocated here. The model must outlive the explainer. opts may be NULL.
 * *out: new, free with cnnviz_explainer_free().
 */
int cnnviz_explainer_new(const cnnviz_model *model, int64_t max_batch,
			 const cnnviz_options *opts, cnnviz_explainer **out,
			 struct cnnviz_error *err);
void cnnviz_explainer_free(cnnviz_explainer *ex);

/*
 * Forward, then backward from the target, for `batch` samples (each its
 * own f). inputs: as cnnviz_session_run() (copied). Allocates nothing.
 * CNNVIZ_ERR_UNSUPPORTED naming the layer if a layer on the way to the
 * target has no backward pass.
 */
int cnnviz_explainer_run(cnnviz_explainer *ex, const float *const *inputs,
			 int64_t batch, const struct cnnviz_target *target,
			 struct cnnviz_error *err);

/*
 * After a run: a layer's forward output, and the gradient of f with
 * respect to it (zero for layers that do not lead to the target), batch x
 * the layer's Keras shape. out->data is borrowed until the next call on
 * ex. CNNVIZ_ERR_ARG before a run or for a bad index.
 */
int cnnviz_explainer_activation(const cnnviz_explainer *ex, int layer,
				struct cnnviz_tensor *out);
int cnnviz_explainer_gradient(const cnnviz_explainer *ex, int layer,
			      struct cnnviz_tensor *out);
/* f(x) of sample `sample` of the last run; NAN if none (or if a fused
   softmax logit cannot be recomputed, e.g. a channels_first layer). */
double cnnviz_explainer_score(const cnnviz_explainer *ex, int64_t sample);

/*
 * Convenience for single-input models: the gradient of target's f, for
 * one sample, with respect to layer `layer`'s output (-1: the input),
 * copied into out[0..out_count). Allocates per call.
 */
int cnnviz_gradient(const cnnviz_model *model, const float *input,
		    const struct cnnviz_target *target, int layer,
		    const cnnviz_options *opts, float *out, size_t out_count,
		    struct cnnviz_error *err);

/* struct cnnviz_cam_info.flags */
#define CNNVIZ_CAM_NO_POSITIVE 0x1u /* no value > 0: after the usual ReLU
				       the map is blank (e.g. a class with no
				       positive evidence); warn, do not draw
				       a normalised map */
#define CNNVIZ_CAM_FLAT 0x2u        /* every value equal */
#define CNNVIZ_CAM_NONFINITE 0x4u   /* NaN/inf occurred and were set to 0 */

struct cnnviz_cam_info {
	int64_t height, width; /* the map's size */
	double score;          /* f(x) */
	unsigned flags;        /* CNNVIZ_CAM_* */
	int64_t forward_runs;  /* forward passes spent (batched samples) */
	/* Integrated Gradients only (else NAN, 0): the sum of all
	   attributions, f(x) - f(baseline), |sum - delta| / max(|delta|,
	   1e-12), and the intervals used. */
	double ig_sum, ig_delta, ig_error;
	int64_t ig_steps;
};

/*
 * The i-th method name cnnviz_cam() knows, or NULL past the end (static):
 * gradcam, gradcam++, layercam, hirescam, cam, scorecam, ablationcam,
 * eigencam (layer maps: height x width of the layer's output), and
 * occlusion, saliency, smoothgrad, ig, guided_backprop (input maps: height
 * x width of a model input).
 */
const char *cnnviz_cam_method(int i);
/* Non-zero if the method's map is in input space. */
int cnnviz_cam_method_is_input(const char *method);

/*
 * The default CAM layer: the last layer, in execution order, whose output
 * is an image-like map (rank 4) and which leads to model output 0; -1 if
 * none.
 */
int cnnviz_cam_default_layer(const cnnviz_model *model);

/*
 * Computes one explanation map for one sample: inputs[i] holds one sample
 * of model input i (copied). layer: for layer maps, a layer with a rank-4
 * output (-1: cnnviz_cam_default_layer); for input maps, a model input
 * layer (-1: the first input). The map is RAW: before any ReLU,
 * normalisation or upsampling, float32, row-major height x width; size it
 * with cnnviz_cam_size(). Methods:
 *   gradcam     sum_k mean_ij(dF/dA_ijk) A_ijk
 *   gradcam++   weights sum_ij alpha_ijk relu(g_ijk), alpha = g^2 /
 *               (2 g^2 + sum_ij A_ijk g^3) (0 where the denominator is 0)
 *   layercam    sum_k relu(g_ijk) A_ijk
 *   hirescam    sum_k g_ijk A_ijk
 *   cam         sum_k W[k, unit] A_ijk, exact only where the layer feeds a
 *               GlobalAveragePooling2D whose (aliased) output feeds the
 *               target Dense (or a softmax right after it); refused
 *               (CNNVIZ_ERR_UNSUPPORTED) for any other head
 *   scorecam    softmax over channels of f(x * norm(up(A_k))) (channels
 *               upsampled bilinear to the input, min-max normalised)
 *   ablationcam (f(x) - f with channel k zeroed) / |f(x)|, re-running only
 *               the layers after `layer`
 *   eigencam    projection of A (mean-centred over positions) on its first
 *               principal component, signed to correlate positively with
 *               the channel mean; ignores the target
 *   occlusion   per pixel, the mean over the patches covering it of
 *               f(x) - f(x with the patch set to the baseline)
 *   saliency    dF/dx, channels reduced ("input_reduce", max_abs)
 *   smoothgrad  mean of dF/dx over noisy copies of x, reduced
 *   ig          (x - x') * the path integral of dF/dx from x' to x
 *               (trapezoid rule), channels summed; completeness in info
 *   guided_backprop  dF/dx where every ReLU passes only positive
 *               gradients; NOTE it is known to fail the randomisation
 *               sanity check (Adebayo et al. 2018): it shows edges, not
 *               what the model uses
 * Non-finite values are replaced by 0 (flagged); maps never hold NaN.
 * Uses ex's buffers (its max_batch batches the forward-only methods) and
 * may allocate temporaries. info may be NULL.
 */
int cnnviz_cam(cnnviz_explainer *ex, const char *method, int layer,
	       const float *const *inputs, const struct cnnviz_target *target,
	       const cnnviz_options *opts, float *map, size_t map_count,
	       struct cnnviz_cam_info *info, struct cnnviz_error *err);
/* The map size of method at layer (as cnnviz_cam() resolves them). */
int cnnviz_cam_size(const cnnviz_explainer *ex, const char *method,
		    int layer, int64_t *height, int64_t *width,
		    struct cnnviz_error *err);

/*
 * Faithfulness of a map (height x width, borrowed; any size: it is
 * resized bilinear to the input) for one sample, beside the same scores
 * of "eval_random" uniform random maps (seeded):
 *   deletion   input pixels (all channels) set to "eval_baseline" in order
 *              of decreasing map value, "eval_steps" steps; the mean of
 *              f over the steps 0..n (trapezoid area under f against the
 *              removed fraction): lower is better
 *   insertion  from the all-baseline input, pixels restored in the same
 *              order; area under f: higher is better
 *   avg_drop   100 * max(0, f(x) - f(x * m)) / f(x), m = the map after
 *              ReLU and division by its max (Grad-CAM++'s "average
 *              drop"): lower is better; NAN when f(x) <= 0
 * f is the explainer's (see "target_logit"): the literature scores class
 * probabilities, which average drop in particular assumes (a logit can go
 * negative and make the drop exceed 100%). Forward runs are batched by the
 * explainer's max_batch; allocates temporaries.
 */
struct cnnviz_faithfulness {
	double deletion, insertion, avg_drop;
	double random_deletion, random_insertion, random_avg_drop;
	double score; /* f(x) */
};

int cnnviz_faithfulness(cnnviz_explainer *ex, const float *const *inputs,
			const struct cnnviz_target *target, const float *map,
			int64_t height, int64_t width,
			const cnnviz_options *opts,
			struct cnnviz_faithfulness *out,
			struct cnnviz_error *err);

/*
 * The cascading model-parameter randomisation test (Adebayo et al.,
 * "Sanity Checks for Saliency Maps", 2018). The model is opened again
 * from `path` (with model_opts) into a private copy; from the top layer
 * down, each layer's weights are randomised in turn -- shuffled within
 * each weight array with "seed", which keeps every array's distribution
 * (so BN variances stay positive) and destroys what was learned -- and
 * the map of `method` at `layer` (see cnnviz_cam) recomputed. steps[k]
 * gets the k-th randomised layer and the Spearman rank correlation
 * between the original map and the map after randomising it and every
 * layer above it (ties get average ranks; a constant map gives 0).
 * A method that passes sees the correlation fall towards 0. At most
 * max_steps layers are done (from the top); *n_steps gets how many.
 */
struct cnnviz_sanity_step {
	int layer;       /* the layer randomised at this step */
	double spearman; /* rank correlation with the original map */
};

int cnnviz_sanity_cascade(const char *path, const cnnviz_options *model_opts,
			  const char *method, int layer,
			  const float *const *inputs,
			  const struct cnnviz_target *target,
			  const cnnviz_options *opts,
			  struct cnnviz_sanity_step *steps, int max_steps,
			  int *n_steps, struct cnnviz_error *err);

#ifdef __cplusplus
}
#endif
#endif /* CNNVIZ_H */
