/*
 * The backward pass of the layer families: what the family files
 * (<family>.c, whose op tables point at these) and the backward executor
 * (lib/grad.c) share. The functions are the ops' `backward` (see struct
 * cnnviz__op in internal.h): they ADD the input gradients into dx[i].
 */
#ifndef CNNVIZ_LAYERS_GRAD_H
#define CNNVIZ_LAYERS_GRAD_H

#include "../internal.h"
#include "../kernels.h"

#define CNNVIZ__BACKWARD(sym)                                                  \
	void sym(const struct cnnviz__layer *l, const struct cnnviz__io *io,   \
		 const float *dy, float *const *dx)

/* ---- conv.c keeps struct conv private; conv_grad.c reads it via this */

enum cnnviz__conv_kind {
	CNNVIZ__CONV_PLAIN,
	CNNVIZ__CONV_DEPTHWISE,
	CNNVIZ__CONV_SEPARABLE,
	CNNVIZ__CONV_TRANSPOSE
};

/* A convolution layer as the file holds it (weights are the loaded,
   unconverted arrays: NULL before loading). */
struct cnnviz__conv_view {
	int kind;                          /* CNNVIZ__CONV_* */
	const struct cnnviz__conv_geom *g;
	const struct cnnviz__act *act;     /* fused activation */
	const float *kernel;  /* PLAIN (kh,kw,cin/groups,cout), or (cout,cin,
				 kh,kw) when oihw; DEPTHWISE/SEPARABLE
				 (kh,kw,cin,mult); TRANSPOSE (kh,kw,cout,cin) */
	const float *pw;      /* SEPARABLE: (cin*mult, cout) */
	const float *bias;    /* (cout) or NULL */
	int oihw;             /* Keras 1 'th' Conv2D kernel */
	int flip;             /* Theano kernel: reversed in kh and kw */
};

/* conv.c */
void cnnviz__conv_view(const struct cnnviz__layer *l,
		       struct cnnviz__conv_view *v);

/* conv_grad.c: sets l->bscratch_* (called at the end of conv setup);
   -1 if the sizes overflow. */
int cnnviz__conv_grad_setup(struct cnnviz__layer *l);
/* The backward of any conv kind; skip_act: as if the activation were
   linear (dy is the pre-activation's gradient). */
void cnnviz__conv_backward_impl(const struct cnnviz__layer *l,
				const struct cnnviz__io *io, const float *dy,
				float *const *dx, int skip_act);
/* Pre-activation of output element `unit` of one sample x (the op's
   layout); NAN where not available (only Conv2D computes it). */
double cnnviz__conv_preact_unit(const struct cnnviz__layer *l,
				const float *x, int64_t unit);
CNNVIZ__BACKWARD(cnnviz__conv2d_backward);
CNNVIZ__BACKWARD(cnnviz__depthwise_conv2d_backward);
CNNVIZ__BACKWARD(cnnviz__separable_conv2d_backward);
CNNVIZ__BACKWARD(cnnviz__conv2d_transpose_backward);

/* dense_grad.c */
CNNVIZ__BACKWARD(cnnviz__dense_backward);
void cnnviz__dense_backward_impl(const struct cnnviz__layer *l,
				 const struct cnnviz__io *io, const float *dy,
				 float *const *dx, int skip_act);
double cnnviz__dense_preact_unit(const struct cnnviz__layer *l,
				 const float *x, int64_t unit);
/* The layer's bscratch needs (called at the end of dense setup). */
void cnnviz__dense_grad_setup(struct cnnviz__layer *l);

/* norm_grad.c */
CNNVIZ__BACKWARD(cnnviz__affine_backward);
CNNVIZ__BACKWARD(cnnviz__rescaling_backward);

/* pool_grad.c */
CNNVIZ__BACKWARD(cnnviz__max_pool2d_backward);
CNNVIZ__BACKWARD(cnnviz__avg_pool2d_backward);
CNNVIZ__BACKWARD(cnnviz__global_avg_pool2d_backward);
CNNVIZ__BACKWARD(cnnviz__global_max_pool2d_backward);

/* activation_grad.c */
CNNVIZ__BACKWARD(cnnviz__act_layer_backward);
CNNVIZ__BACKWARD(cnnviz__thresholded_relu_backward);
CNNVIZ__BACKWARD(cnnviz__softmax_backward);
CNNVIZ__BACKWARD(cnnviz__prelu_backward);

/* merge_grad.c */
CNNVIZ__BACKWARD(cnnviz__merge_backward);

/* shape_grad.c */
CNNVIZ__BACKWARD(cnnviz__copy_backward);    /* identity, Reshape */
CNNVIZ__BACKWARD(cnnviz__flatten_backward);
CNNVIZ__BACKWARD(cnnviz__permute_backward);
/* The layer's bscratch needs (called at the end of permute setups). */
void cnnviz__permute_grad_setup(struct cnnviz__layer *l);
CNNVIZ__BACKWARD(cnnviz__zero_padding2d_backward);
CNNVIZ__BACKWARD(cnnviz__cropping2d_backward);
CNNVIZ__BACKWARD(cnnviz__upsampling2d_backward);

/* ---- for the explainers (lib/grad.c, lib/cam.c) */

/*
 * The activation a layer applies last: the Activation/ReLU/LeakyReLU/ELU
 * layers' (*fused = 0) or a Conv/Dense layer's "activation" (*fused = 1).
 * NULL for every other layer.
 */
const struct cnnviz__act *cnnviz__grad_layer_act(const struct cnnviz__layer *l,
						 int *fused);
/*
 * The backward of a Conv/Dense layer as if its fused activation were
 * linear: dy is then the gradient of the pre-activation (the logits of a
 * Dense(activation='softmax')). Only for layers where
 * cnnviz__grad_layer_act() reports fused.
 */
void cnnviz__grad_backward_preact(const struct cnnviz__layer *l,
				  const struct cnnviz__io *io,
				  const float *dy, float *const *dx);
/*
 * The pre-activation value of output element `unit` of one sample whose
 * input (op layout) is x: a Dense's or Conv2D's logit. NAN for others.
 */
double cnnviz__grad_preact_unit(const struct cnnviz__layer *l,
				const float *x, int64_t unit);

#endif /* CNNVIZ_LAYERS_GRAD_H */
