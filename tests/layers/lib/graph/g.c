#include "graph_internal.h"
#include "sched/sched_internal.h" /* breaks: graph -> sched */
#include "tgraph/executor.h" /* breaks: graph -> sched */
#include "tgraph/registry.h"
#include "../cache/c.h" /* breaks: graph -> cache */
#include "generated.h" /* not in the tree: ignored */
