/* Lookup of Keras class names in layers.def. */
#include <string.h>

#include "../internal.h"

#define CNNVIZ_LAYER(cls, op) extern const struct cnnviz__op cnnviz__op_##op;
#include "layers.def"
#undef CNNVIZ_LAYER

static const struct {
	const char *cls;
	const struct cnnviz__op *op;
} registry[] = {
#define CNNVIZ_LAYER(cls, op) {cls, &cnnviz__op_##op},
#include "layers.def"
#undef CNNVIZ_LAYER
};

#define REGISTRY_SIZE (sizeof registry / sizeof registry[0])

const struct cnnviz__op *cnnviz__op_find(const char *class_name)
{
	for (size_t i = 0; i < REGISTRY_SIZE; i++)
		if (strcmp(registry[i].cls, class_name) == 0)
			return registry[i].op;
	return NULL;
}

const char *cnnviz_layer_class(int i)
{
	if (i < 0 || (size_t)i >= REGISTRY_SIZE)
		return NULL;
	return registry[i].cls;
}

const char *cnnviz_layer_class_kind(int i)
{
	if (i < 0 || (size_t)i >= REGISTRY_SIZE)
		return NULL;
	return registry[i].op->name;
}
