/* lib/json/gj_internal.h: the graph.json reader's internal model: an
 * arena, the parsed tasks and arguments, and the steps from text to
 * graph (parse.c -> resolve.c -> emit.c, driven by load.c). */
#ifndef TG_GJ_INTERNAL_H
#define TG_GJ_INTERNAL_H

#include <stdarg.h>

#include "internal.h"
#include "graph/graph_internal.h"
#include "tgraph/graphjson.h"

/* ---- arena: bump allocation, freed all at once (arena.c) ---- */
typedef struct gj_chunk gj_chunk;
typedef struct gj_arena {
  gj_chunk *head;
  char *cur, *end;
  size_t chunk; /* size of the next chunk */
} gj_arena;

void *tg__gj_alloc(gj_arena *a, size_t n);     /* 8-byte aligned; NULL OOM */
char *tg__gj_strdup(gj_arena *a, const char *s, size_t n); /* NUL added */
void tg__gj_arena_free(gj_arena *a);

/* ---- parsed arguments ---- */
enum { GJ_CONST, GJ_REF, GJ_LIST, GJ_MAP };
enum { GJ_GET_NONE, GJ_GET_INDEX, GJ_GET_KEY };

typedef struct gj_arg gj_arg;
struct gj_arg {
  uint8_t kind;   /* GJ_* */
  uint8_t get;    /* GJ_GET_*, for refs */
  uint32_t keylen; /* for refs: bytes in u.ref.key */
  size_t off;     /* byte offset of the value */
  union {
    tg_value *value; /* GJ_CONST: owned until handed to the graph */
    struct {
      const char *key;   /* arena */
      const char *gkey;  /* GJ_GET_KEY: arena */
      int64_t index;     /* GJ_GET_INDEX */
      uint32_t task;     /* resolved task index */
    } ref;
    struct {
      gj_arg **items;
      const char **keys; /* GJ_MAP: arena, NUL-terminated */
      size_t *keylens;
      size_t n;
    } seq;
  } u;
};

typedef struct gj_task {
  const char *key; /* arena */
  size_t keylen, off;
  unsigned line, col; /* of off, counted while parsing */
  const char *fn;  /* arena */
  size_t fn_off;
  gj_arg **args;
  size_t nargs, args_off;
  int cache, retries;
  double timeout;
  const tg_func *func;
  gj_arg **refs;   /* every ref in its arguments, in order */
  uint32_t nrefs;
  tg_node node;
} gj_task;

typedef struct gj_str {
  const char *s; /* arena */
  size_t len, off;
} gj_str;

#define GJ_SLOTS 4096 /* tg.build slot templates shared per document */
#define GJ_INLINE 16 /* keys up to this long are compared in the slot */
typedef struct gj_slot {
  uint64_t hash;   /* of the key, so growing never reads keys again */
  uint32_t index;  /* task index + 1; 0 = empty */
  uint32_t keylen;
  union {
    char bytes[GJ_INLINE]; /* short keys, zero-padded */
    const char *ptr;       /* longer keys (arena) */
  } key;
} gj_slot;

/* Everything known about one file while it is being read. */
typedef struct gj_doc {
  const char *text; /* the file, NUL after its last byte */
  size_t len;
  const char *name; /* file name for messages */
  const char *base_dir;
  bool text_mapped; /* text is a private mapping of a file, ours to drop */
  tg_error *err;
  gj_arena arena; /* what the info keeps: task keys, function names,
                     outputs, plugin paths, dependencies */
  gj_arena work;  /* the rest of the parse, dropped after the load */
  gj_task *tasks;
  size_t ntasks, cap_tasks;
  gj_slot *table;    /* open addressing, see table.c */
  size_t table_mask;
  gj_str *outputs, *plugins;
  size_t noutputs, nplugins;
  bool has_outputs;
  bool handed_over;       /* emit succeeded: the graph owns the constants */
  bool slash_keys;        /* some task key holds a '/' */
  uint32_t *output_tasks; /* task index of each output */
  const tg_func *build;   /* tg.build, when an argument nests refs */
  uint8_t *marks;         /* emit: per task, its colour in the walk */
  tg_node *nodes;         /* emit: per task, its node once added */
  tg_value *tags[4];      /* emit: "c", "s", "l", "m" for tg.build */
  tg_value **slots;       /* emit: shared ["s", i] templates, GJ_SLOTS */
} gj_doc;

/* ---- steps ---- */
/* Parse the text into doc (tasks, outputs, plugins). */
int tg__gj_parse(gj_doc *d);
/* Look functions up, check argument counts, resolve refs and outputs. */
int tg__gj_resolve(gj_doc *d, tg_registry *reg);
/* Add every task to g in dependency order; finds cycles. */
int tg__gj_emit(gj_doc *d, tg_graph *g);
/* Drop the constant values an argument tree still owns. a may be NULL. */
void tg__gj_release_arg(gj_arg *a);
/* Drop every constant value the document still owns. */
void tg__gj_release(gj_doc *d);

/* Index every task by key; a duplicate key is an error (at the later
 * one). */
int tg__gj_index(gj_doc *d);
/* Task index of key, or UINT32_MAX. */
uint32_t tg__gj_find(const gj_doc *d, const char *key, size_t len);
/* out[i] = the task index of refs[i]'s key, or UINT32_MAX; many lookups
 * at once go faster than one at a time (their memory is fetched
 * together). */
void tg__gj_find_many(const gj_doc *d, gj_arg *const *refs, size_t n,
                      uint32_t *out);

/* The parser no longer reads text before byte offset upto (except to
 * place an error): a mapped file may let those pages go. */
void tg__gj_text_done(gj_doc *d, size_t upto);

/* Fill d->err with "NAME:LINE:COL: message" for byte offset off; returns
 * code. */
int tg__gj_fail(gj_doc *d, size_t off, int code, const char *fmt, ...)
    TG__PRINTF(4, 5);
/* The text starts with a UTF-8 byte-order mark (3 bytes). */
bool tg__gj_bom(const char *text, size_t len);
/* 1-based line and column (in characters) of byte offset off; a byte-
 * order mark at the start of text is not a column. */
void tg__gj_position(const char *text, size_t off, unsigned *line,
                     unsigned *col);

#endif /* TG_GJ_INTERNAL_H */
