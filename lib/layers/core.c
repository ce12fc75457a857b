/* InputLayer: the graph builder gives inputs their shape; no compute. */
#include "../internal.h"

static int input_setup(struct cnnviz__setup *s)
{
	/* Reached only for an InputLayer in a place Keras never puts one. */
	return cnnviz__setup_fail(s, CNNVIZ_ERR_FORMAT,
				  "an InputLayer that is not a model input");
}

const struct cnnviz__op cnnviz__op_input = {
	.name = "input",
	.flags = CNNVIZ__OP_ALIAS,
	.setup = input_setup,
};
