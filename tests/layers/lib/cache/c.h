#include "tgraph/serial.h"
