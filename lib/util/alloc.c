/* lib/util/alloc.c: the library's allocation entry points (one place to
 * add accounting or fault injection later). */
#include <stdlib.h>

#include "internal.h"

void *tg__malloc(size_t n) { return malloc(n ? n : 1); }
void *tg__calloc(size_t count, size_t size) {
  return calloc(count ? count : 1, size ? size : 1);
}
void *tg__realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }
void tg__free(void *p) { free(p); }

void *tg__aligned_alloc(size_t align, size_t size) {
  void *p = NULL;
  /* posix_memalign accepts any size; round up so vector code may read a
   * whole trailing block. */
  if (posix_memalign(&p, align, tg__align_up(size ? size : 1, align)) != 0)
    return NULL;
  return p;
}
