/* lib/registry/registry_internal.h: the layout of registered functions and
 * of a worker's per-worker state instances, shared by the registry, graph
 * and scheduler modules. The context a task runs with is taskhost.h's.
 *
 * Thread safety: a tg_func is immutable once registered. A state table
 * belongs to the one thread of its worker.
 */
#ifndef TG_REGISTRY_INTERNAL_H
#define TG_REGISTRY_INTERNAL_H

#include "internal.h"
#include "tgraph/registry.h"

#define TG__NAME_MAX 255 /* longest function name, in bytes */

/* A declared per-worker state (tg_registry_add_state); lives as long as
 * the registry. */
typedef struct tg__state {
  int (*init)(void *user, void **state, tg_error *err);
  void (*teardown)(void *user, void *state);
  void *user;
  const char *name; /* points into the same allocation */
} tg__state;

struct tg_func {
  tg_task_fn fn;
  const tg__state *state; /* what its tasks get from tg_task_state(), or
                             NULL */
  void *user;       /* from the definition, for tg_task_user() */
  unsigned flags;   /* TG_FUNC_* */
  int nargs;        /* exact argument count or -1 */
  uint32_t hash;    /* of the name, for the index */
  uint32_t name_len;
  const char *name; /* these three point into the same allocation */
  const char *version;
  const char *doc;
  const char *code_id; /* NULL when none; else in the same allocation */
  uint64_t ignore;  /* ignore_args of the definition */
  tg_digest code;   /* XXH3-128 of "tgcode1" + code_id, when it has one */
  uint32_t index;   /* registration order: indexes per-run tables */
  bool has_origin;  /* origin is set (the function came from a plugin) */
  tg_digest origin; /* content digest of the plugin providing it: part of
                       the function's identity in cache keys */
  uint8_t kind;     /* TG__ORIGIN_*: where its code comes from */
  char origin_file[64]; /* plugin: its file's base name, for messages */
};

/* Where a function's code comes from. Two functions of one name and
 * version are the same code only if they come from the same place: the
 * same program (trusted by name and version), the same plugin file
 * (digest) or the same build of this library (its builtins). */
enum {
  TG__ORIGIN_PROGRAM = 0, /* compiled into the program that registered it */
  TG__ORIGIN_PLUGIN = 1,  /* registered by a plugin's tg_plugin_init */
  TG__ORIGIN_BUILTIN = 2, /* one of tg_registry_add_builtins' */
};

/* The digest joining f's identity in cache keys after its name and
 * version: its code digest when it declares a code id (then the plugin
 * file's bytes do not matter), else the digest of the plugin it comes
 * from, else NULL (compiled in, or a builtin: name and version alone). */
static inline const tg_digest *tg__func_key_digest(const tg_func *f) {
  return f->code_id ? &f->code : f->has_origin ? &f->origin : NULL;
}
/* True when argument i of a call of f is left out of its cache key. */
static inline bool tg__func_ignores(const tg_func *f, size_t i) {
  return i < 64 && (f->ignore >> i & 1);
}

/* Record that f comes from a plugin whose file has content digest d and
 * (file, may be NULL) the given path (the plugin loader calls this for each
 * function the plugin registered, right after its init and before any
 * graph uses them). */
void tg__func_set_origin(const tg_func *f, tg_digest d, const char *file);
/* Record that f is one of this library's builtins. */
void tg__func_set_builtin(const tg_func *f);
/* This library's build identity: "VERSION+SOURCEDIGEST" (static). Two
 * libraries built from the same sources have the same one. */
const char *tg__library_build(void);
/* Say where f's code comes from, as a verb phrase for messages, e.g.
 * "comes from plugin libbug.so (digest ...)", "is a builtin of tgraph
 * 0.1.0+... ", "is compiled into this program" (program_what names the
 * program). Returns buf. */
char *tg__func_origin_text(uint8_t kind, const char *file, tg_digest d,
                           const char *build, const char *program_what,
                           char *buf, size_t size);

/* "code id 'ID'", or "no code id" when id is NULL or "", into buf. */
char *tg__code_id_text(const char *id, char *buf, size_t size);

/* ---- per-worker state instances (lib/registry/state.c) ----
 *
 * One table per worker (a pool thread, a sync executor, a worker process,
 * a remote worker's task thread), owned and used by that worker's thread
 * alone: no locks. Zero-initialized is empty. */
typedef struct tg__wstate {
  const tg__state *st;
  void *value;     /* what init made */
  int code;        /* TG_OK, or init's failure (remembered) */
  char msg[224];   /* init's message when it failed */
} tg__wstate;

typedef struct tg__wstates {
  tg__wstate *v;   /* in the order of the inits */
  uint32_t n, cap;
} tg__wstates;

/* Make ctx's function's state ready in ws (init on first use; a failure
 * is remembered) and point ctx at it. TG_OK, or the init's code after
 * tg_task_fail on ctx naming the state. */
int tg__wstates_prepare(tg__wstates *ws, tg_task_ctx *ctx);
/* Tear down every state ws holds (reverse order of the inits) and empty
 * it; on the worker's thread. ws may be NULL. */
void tg__wstates_teardown(tg__wstates *ws);

#endif /* TG_REGISTRY_INTERNAL_H */
