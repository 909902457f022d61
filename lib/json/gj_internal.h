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
  gj_chunk *bump; /* the chunk cur points into */
  char *cur, *end;
  size_t chunk; /* size of the next chunk */
  uint32_t tag; /* whose the next allocations are (a task index): each
                   chunk remembers the highest tag allocated in it */
} gj_arena;

void *tg__gj_alloc(gj_arena *a, size_t n);     /* 8-byte aligned; NULL OOM */
/* Take p (n bytes) back when it was the last allocation; false if not. */
bool tg__gj_unalloc(gj_arena *a, void *p, size_t n);
/* Free every chunk that holds only allocations tagged below tag (except
 * the one being filled). */
void tg__gj_arena_release_below(gj_arena *a, uint32_t tag);
char *tg__gj_strdup(gj_arena *a, const char *s, size_t n); /* NUL added */
void tg__gj_arena_free(gj_arena *a);

/* ---- parsed arguments ---- */
enum { GJ_CONST, GJ_REF, GJ_LIST, GJ_MAP };
enum { GJ_GET_NONE, GJ_GET_INDEX, GJ_GET_KEY };

typedef struct gj_arg gj_arg;
struct gj_arg {
  uint8_t kind;   /* GJ_* */
  uint8_t get;    /* GJ_GET_*, for refs */
  union {
    uint32_t keylen; /* GJ_REF: bytes in u.ref.key */
    uint32_t nitems; /* GJ_LIST, GJ_MAP: items in u.seq */
  };
  size_t off;     /* byte offset of the value */
  union {
    tg_value *value; /* GJ_CONST: owned until handed to the graph */
    struct {
      union {
        const char *key; /* ref_keys arena, until resolved */
        uint32_t task;   /* the task, once resolved (a ref to a missing
                            task keeps its key for the message) */
      };
      union {
        const char *gkey;  /* GJ_GET_KEY: arena */
        int64_t index;     /* GJ_GET_INDEX */
      };
    } ref;
    struct {
      gj_arg **items;
      const char **keys; /* GJ_MAP: arena, NUL-terminated; their lengths
                            follow them (tg__gj_keylens) */
    } seq;
  } u;
};

_Static_assert(sizeof(void *) != 8 || sizeof(gj_arg) == 32, "gj_arg grew");

/* The lengths of a GJ_MAP's keys, stored after its key pointers. */
static inline size_t *tg__gj_keylens(const gj_arg *a) {
  return (size_t *)(void *)(a->u.seq.keys + a->nitems);
}

/* A task's argument in gj_task.args: a constant (the common case: a
 * million leaves each take one) is its tg_value itself, so it costs a
 * pointer instead of a pointer and a gj_arg; anything else is its gj_arg
 * with bit 1 set. tg_values are immediates (bit 0 set) or aligned
 * pointers, gj_args are 8-byte aligned, so the two never meet. NULL is a
 * constant already handed to the graph. */
typedef uintptr_t gj_targ;
static inline bool tg__gj_is_value(gj_targ a) { return (a & 3u) != 2u; }
static inline tg_value *tg__gj_value_of(gj_targ a) { return (tg_value *)a; }
static inline gj_targ tg__gj_of_value(tg_value *v) { return (gj_targ)v; }
static inline gj_arg *tg__gj_arg_of(gj_targ a) {
  return (gj_arg *)(a & ~(uintptr_t)2u);
}
static inline gj_targ tg__gj_of_arg(gj_arg *a) { return (gj_targ)a | 2u; }
/* The kind of a task's argument. */
static inline unsigned tg__gj_kind(gj_targ a) {
  return tg__gj_is_value(a) ? GJ_CONST : tg__gj_arg_of(a)->kind;
}

/* A million of these live at once: fields are ordered and sized so that
 * one takes 96 bytes. */
typedef struct gj_task {
  const char *key; /* arena */
  const char *fn;  /* arena */
  gj_targ *args;
  const tg_func *func;
  uint32_t *deps;  /* arena: the task each ref in its arguments names, in
                      order (resolved; the info's deps) */
  size_t off;      /* of the key */
  double timeout;
  uint32_t keylen, nargs, nrefs;
  tg_node node;
  unsigned line, col; /* of off, counted while parsing */
  uint32_t fn_at, args_at; /* offsets of "fn"'s and "args"' values from
                              off (a task's text is under 4 GiB) */
  int16_t retries;
  int8_t cache;
  uint8_t map;       /* GJ_MAP_*: a task with "map" instead of "fn" */
  uint32_t chunk;    /* a map's "chunksize" (0: picked) and, from
                        resolve on, its item's position: as a chunk's aux
                        (tg__chunk_aux) */
  int32_t priority; /* "priority", 0 when not given */
} gj_task;

/* gj_task.map bits. A map's "over" is kept as its last argument (always
 * a gj_arg, for its position), after the extras of "args". */
enum { GJ_MAP_TASK = 1, GJ_MAP_OVER = 2, GJ_MAP_CHUNK = 4 /* "chunksize" seen */ };
_Static_assert(sizeof(void *) != 8 || sizeof(gj_task) == 104,
               "gj_task grew");

typedef struct gj_str {
  const char *s; /* arena */
  size_t len, off;
} gj_str;

#define GJ_SLOTS 4096 /* tg.build slot templates shared per document */
#define GJ_INLINE 8 /* keys up to this long are compared in the slot */
typedef struct gj_slot { /* 16 bytes: two million of them index a
                            million tasks */
  uint32_t tag;    /* 28 bits of the key's hash and its length code */
  uint32_t index;  /* task index + 1; 0 = empty */
  char bytes[GJ_INLINE]; /* short keys, zero-padded; a longer key is
                            compared with its task's */
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
  gj_arena work;  /* the rest of the parse, tagged with the task each
                     allocation is for; the emit drops it behind itself */
  gj_arena ref_keys; /* the keys refs name: read only to resolve them */
  size_t work_done; /* tasks below this have had their work memory freed */
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
  tg_value *tags[4];      /* emit: "c", "s", "l", "m" for tg.build */
  tg_value **slots;       /* emit: shared ["s", i] templates, GJ_SLOTS */
} gj_doc;

/* ---- steps ---- */
/* Parse the text into doc (tasks, outputs, plugins). */
int tg__gj_parse(gj_doc *d);
/* Look functions up, check argument counts, resolve refs and outputs. */
int tg__gj_resolve(gj_doc *d, tg_registry *reg);
/* A map's {"range": [start, stop(, step)]}: ints, step not 0, at most
 * GJ_RANGE_MAX items (*n of them). */
#define GJ_RANGE_MAX 100000000
bool tg__gj_range(const tg_value *v, int64_t *start, int64_t *step, size_t *n);
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
