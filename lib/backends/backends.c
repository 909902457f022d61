/* lib/backends/backends.c: the table of backends by name. */
#include <string.h>

#include "backends.h"

static const tg__backend_ops *const known[] = {
    &tg__backend_sync,
    &tg__backend_threads,
    &tg__backend_processes,
    &tg__backend_tcp,
};

const tg__backend_ops *tg__backend_find(const char *name) {
  if (!name) name = "threads";
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(known[i]->name, name) == 0) return known[i];
  return NULL;
}

const char *tg__backend_names(void) { return "sync, threads, processes, tcp"; }
