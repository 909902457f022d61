#include "graph/graph_internal.h"
#include "memo/m.h"
