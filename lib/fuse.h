/* The fused schedule of a session (fuse.c plans it, run.c runs it). */
#ifndef CNNVIZ_FUSE_H
#define CNNVIZ_FUSE_H

#include "internal.h"

struct cnnviz__fusion {
	int any;       /* some chain was fused */
	int *skip;     /* layer computed as part of an earlier chain */
	int *dest;     /* chain start: layer whose buffer receives the result */
	int *has_post;
	struct cnnviz__epilogue *post; /* chain start's epilogue */
	int *residual; /* chain start: root layer added as residual, or -1 */
	int *pad_folded; /* reads the input of its ZeroPadding2D l->in[0] */
	int *pre;        /* depthwise chain start it computes first, or -1 */
	int *expand;     /* with pre: the 1x1 conv chain computing the
			    depthwise input row by row, or -1 */
	int *owner;      /* the layer whose step computes this one (itself
			    unless skipped) */
};

/* root[]: the layer owning each layer's buffer (run.c's aliasing). */
int cnnviz__fusion_plan(const struct cnnviz_model *m, const int *root,
			struct cnnviz__fusion *f);
void cnnviz__fusion_free(struct cnnviz__fusion *f);
int cnnviz__fusion_can_start(const struct cnnviz__layer *l);

#endif
