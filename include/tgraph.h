/* include/tgraph.h: everything public in one include. */
#ifndef TGRAPH_H
#define TGRAPH_H

#include "tgraph/error.h"
#include "tgraph/value.h"
#include "tgraph/serial.h"
#include "tgraph/registry.h"
#include "tgraph/codeid.h"
#include "tgraph/graph.h"
#include "tgraph/executor.h"
#include "tgraph/cache.h"
#include "tgraph/readfile.h"
#include "tgraph/graphjson.h"
#include "tgraph/builtins.h"
#include "tgraph/plugin.h"
#include "tgraph/remote.h"
#include "tgraph/report.h"
#include "tgraph/dashboard.h"
#include "tgraph/cluster.h"

#endif /* TGRAPH_H */
