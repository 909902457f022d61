/* util: nothing above it */
#include "internal.h"
#include "tgraph/value.h" /* breaks: util -> value */
