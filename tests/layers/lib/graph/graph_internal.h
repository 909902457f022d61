#include "internal.h"
#include "tgraph/graph.h"
