/* lib/util/alloc.c: the library's allocation entry points (one place to
 * add accounting or fault injection later). */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

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

void tg__advise_huge(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
  const uintptr_t huge = (uintptr_t)2 << 20;
  if (p == NULL || n < huge) return;
  uintptr_t from = ((uintptr_t)p + huge - 1) & ~(huge - 1);
  uintptr_t to = ((uintptr_t)p + n) & ~(huge - 1);
  /* Only a hint: a kernel without transparent huge pages says no. */
  if (to > from) (void)madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}
