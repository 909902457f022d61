/* lib/json/arena.c: a bump allocator for the graph.json reader, so a
 * million tasks cost a few hundred allocations, all freed at once. */
#include <string.h>

#include "json/gj_internal.h"

#define FIRST_CHUNK (1u << 12)
#define HUGE_PAGE ((size_t)2 << 20)

struct gj_chunk {
  gj_chunk *next;
  uint32_t tag;      /* the highest tag allocated here */
  max_align_t pad[]; /* data follows, aligned */
};

/* Full-size chunks are one huge page each, header included: a big file
 * fills hundreds of them, and a 4 KiB page fault each 4 KiB of keys and
 * arguments was a large part of a load. */
#define CHUNK (HUGE_PAGE - sizeof(gj_chunk))

static gj_chunk *chunk_new(gj_arena *a, size_t size) {
  gj_chunk *c;
  if (size == CHUNK) {
    c = tg__aligned_alloc(HUGE_PAGE, HUGE_PAGE);
    tg__advise_huge(c, HUGE_PAGE);
  } else {
    c = tg__malloc(sizeof *c + size);
  }
  if (c == NULL) return NULL;
  c->next = a->head;
  c->tag = a->tag;
  a->head = c;
  return c;
}

void *tg__gj_alloc(gj_arena *a, size_t n) {
  n = tg__align_up(n ? n : 1, 8);
  if (n > CHUNK / 4) { /* a big block of its own; the current chunk stays */
    gj_chunk *c = chunk_new(a, n);
    return c ? (void *)c->pad : NULL;
  }
  if ((size_t)(a->end - a->cur) < n) {
    /* Chunks double from FIRST_CHUNK: a small graph stays small. */
    size_t size = a->chunk < FIRST_CHUNK ? FIRST_CHUNK : a->chunk;
    while (size < n) size *= 2;
    gj_chunk *c = chunk_new(a, size);
    if (c == NULL) return NULL;
    a->chunk = size * 2 < CHUNK ? size * 2 : CHUNK;
    a->bump = c;
    a->cur = (char *)c->pad;
    a->end = a->cur + size;
  }
  if (a->bump->tag < a->tag) a->bump->tag = a->tag;
  void *p = a->cur;
  a->cur += n;
  return p;
}

bool tg__gj_unalloc(gj_arena *a, void *p, size_t n) {
  n = tg__align_up(n ? n : 1, 8);
  if ((char *)p + n != a->cur) return false;
  a->cur = p;
  return true;
}

void tg__gj_arena_release_below(gj_arena *a, uint32_t tag) {
  for (gj_chunk **pc = &a->head; *pc != NULL;) {
    gj_chunk *c = *pc;
    if (c->tag < tag && c != a->bump) {
      *pc = c->next;
      tg__free(c);
    } else {
      pc = &c->next;
    }
  }
}

char *tg__gj_strdup(gj_arena *a, const char *s, size_t n) {
  char *p = tg__gj_alloc(a, n + 1);
  if (p == NULL) return NULL;
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

void tg__gj_arena_free(gj_arena *a) {
  for (gj_chunk *c = a->head, *next; c != NULL; c = next) {
    next = c->next;
    tg__free(c);
  }
  a->head = a->bump = NULL;
  a->cur = a->end = NULL;
  a->chunk = 0;
}
