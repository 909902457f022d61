/* A user of dependency('tgraph') reaching for an internal header: the
 * dependency gives include/ alone, so this must not compile. */
#include "memo/key.h"

int main(void) { return 0; }
