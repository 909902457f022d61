/* tests/fuzz/fuzz_graphjson.c: libFuzzer target for the graph.json reader.
 *
 * Any input is read by tg_graphjson_parse() over the builtins (plugins
 * are never loaded, and nothing is computed: builtins such as sh and
 * write_file must not run on fuzzed input). It must either fail cleanly
 * (a negative code, no graph, no info, a "g.json:LINE:COL: " message
 * whose line and column are those of err.offset, counted here
 * independently), or give a graph with a node per task and an info whose
 * tasks, outputs and dependencies are in range. A broken property aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/graphjson.h"

#define REQUIRE(cond, what)                                           \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "fuzz_graphjson: %s (%s:%d)\n", what, __FILE__, \
              __LINE__);                                              \
      abort();                                                        \
    }                                                                 \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tg_registry *reg;

/* Line and column (characters, from 1; a byte-order mark at the start is
 * no column) of byte offset off, the plain way. */
static void position(const char *s, size_t off, unsigned *line,
                     unsigned *col) {
  size_t start = 0;
  *line = 1;
  for (size_t i = 0; i < off; i++)
    if (s[i] == '\n') (*line)++, start = i + 1;
  if (start == 0 && off >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) start = 3;
  *col = 1;
  for (size_t i = start; i < off; i++)
    *col += ((unsigned char)s[i] & 0xC0) != 0x80;
}

static void check_failure(int rc, const char *text, size_t size,
                          const tg_error *err) {
  REQUIRE(rc < 0, "a failed load returned a non-negative code");
  REQUIRE(err->code == rc && err->msg[0], "a failed load without a message");
  REQUIRE(err->has_offset, "a graph.json error without a position");
  REQUIRE(err->offset <= size, "an error offset past the end");
  unsigned line, col;
  position(text, err->offset, &line, &col);
  char want[64];
  int n = snprintf(want, sizeof want, "g.json:%u:%u: ", line, col);
  REQUIRE(strncmp(err->msg, want, (size_t)n) == 0,
          "the message's LINE:COL is not the error offset's");
}

static void check_success(tg_graph *g, const tg_graphjson_info *info) {
  REQUIRE(g != NULL && info != NULL, "a load succeeded without a graph");
  REQUIRE(tg_graph_size(g) >= info->ntasks, "fewer nodes than tasks");
  for (size_t i = 0; i < info->ntasks; i++) {
    const tg_graphjson_task *t = &info->tasks[i];
    REQUIRE(t->key && t->key[0] && t->fn, "a task without key or function");
    REQUIRE(t->node < tg_graph_size(g), "a task's node is out of range");
    REQUIRE(tg_graph_find(g, t->key) == t->node, "a task's key finds another node");
    REQUIRE(t->line >= 1 && t->column >= 1, "a task without a position");
    for (size_t j = 0; j < t->ndeps; j++)
      REQUIRE(t->deps[j] < info->ntasks, "a dependency out of range");
  }
  for (size_t i = 0; i < info->noutputs; i++)
    REQUIRE(info->output_nodes[i] < tg_graph_size(g), "an output out of range");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (reg == NULL) {
    REQUIRE(tg_registry_new(&reg) == TG_OK, "no registry");
    REQUIRE(tg_registry_add_builtins(reg) == TG_OK, "no builtins");
  }
  char *text = malloc(size + 1); /* the reader wants a NUL after the text */
  REQUIRE(text != NULL, "out of memory");
  memcpy(text, data, size);
  text[size] = '\0';
  tg_graphjson_opts o = {.version = TG_GRAPHJSON_OPTS_V1, .no_plugins = true};
  tg_graph *g = (tg_graph *)text;                  /* must be overwritten */
  tg_graphjson_info *info = (tg_graphjson_info *)text;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_graphjson_parse(text, size, "g.json", NULL, reg, &o, &g, &info,
                              &err);
  if (rc != TG_OK) {
    REQUIRE(g == NULL && info == NULL, "a failed load left a graph or info");
    check_failure(rc, text, size, &err);
  } else {
    check_success(g, info);
  }
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  free(text);
  return 0;
}
