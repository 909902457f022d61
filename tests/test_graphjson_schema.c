/* tests/test_graphjson_schema.c: docs/graph.schema.json and the graph.json
 * reader give the same verdict. Each sample graph (good and bad) is
 * validated by a real JSON Schema validator (Python's jsonschema, draft
 * 2020-12, over strict JSON: no NaN, no duplicate keys) and read by
 * tg_graphjson_parse(); both must say what the sample expects. The
 * samples use builtins with their right argument counts and refs to tasks
 * that exist, so what the reader checks beyond the schema (functions,
 * refs, cycles) never decides. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/graphjson.h"

typedef struct sample {
  bool good;
  const char *text; /* tasks go in {"tgraph": 1, "tasks": {...}} unless
                       the text starts with '{' */
} sample;

#define T(x) "{\"tgraph\": 1, \"tasks\": {" x "}}"
static const sample samples[] = {
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [1]}")},
    {true, "{\"$schema\": \"https://tgraph.invalid/graph.schema.json\", "
           "\"tgraph\": 1, \"tasks\": {}}"},
    {false, "{\"$schema\": 5, \"tgraph\": 1, \"tasks\": {}}"},
    {true, "{\"tgraph\": 1.0, \"tasks\": {}}"},
    {false, "{\"tgraph\": 2, \"tasks\": {}}"},
    {false, "{\"tgraph\": 1}"},
    {false, "{\"tgraph\": 1, \"tasks\": {}, \"extra\": 1}"},
    {true, "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", "
           "\"args\": [1]}}, \"outputs\": [\"a\"], \"plugins\": []}"},
    {false, "{\"tgraph\": 1, \"tasks\": {}, \"outputs\": \"a\"}"},
    {false, "{\"tgraph\": 1, \"tasks\": {}, \"plugins\": [1]}"},
    {false, T("\"\": {\"fn\": \"identity\", \"args\": [1]}")},
    {false, T("\"a\\u0000b\": {\"fn\": \"identity\", \"args\": [1]}")},
    {false, T("\"a\": {\"args\": [1]}")},
    {false, T("\"a\": {\"fn\": 3, \"args\": [1]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": 1}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"x\": 1}")},
    {false, T("\"a\": [\"identity\", 1]")},
    /* options */
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"cache\": false, "
             "\"retries\": 3, \"timeout\": 0.5}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"retries\": 2.0}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"retries\": 2.5}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"retries\": -1}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"retries\": 1001}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"cache\": 1}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"timeout\": -1}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"timeout\": \"1\"}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"priority\": -7}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"priority\": 2.0}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [1], "
             "\"priority\": -2147483648}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [1], "
             "\"priority\": 2147483647}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"priority\": 1.5}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"priority\": \"high\"}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], "
              "\"priority\": 2147483648}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], "
              "\"priority\": -2147483649}")},
    /* refs */
    {true, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
             "\"identity\", \"args\": [{\"ref\": \"a\", \"get\": 1}]}")},
    {true, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
             "\"identity\", \"args\": [{\"ref\": \"a\", \"get\": 1.0}]}")},
    {false, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
              "\"identity\", \"args\": [{\"ref\": \"a\", \"get\": 1.5}]}")},
    {false, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
              "\"identity\", \"args\": [{\"ref\": \"a\", \"get\": 1e300}]}")},
    {false, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
              "\"identity\", \"args\": [{\"ref\": \"a\", \"get\": true}]}")},
    {false, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
              "\"identity\", \"args\": [{\"ref\": \"a\", \"x\": 1}]}")},
    {false, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
              "\"identity\", \"args\": [{\"get\": 1}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"\"}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"ref\": 1}]}")},
    {true, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"fn\": "
             "\"identity\", \"args\": [[1, {\"k\": {\"ref\": \"a\"}}]]}")},
    /* const wrappers */
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"const\": "
             "{\"ref\": \"zz\"}}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"const\": 1, "
              "\"x\": 2}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"const\": "
              "{\"$float\": \"banana\"}}]}")},
    /* "$" forms */
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$float\": \"nan\"}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$float\": \"banana\"}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$float\": 1}]}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$bytes\": \"aGk=\"}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$bytes\": \"a*k=\"}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$foo\": 1}]}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$foo\": 1, \"b\": 2}]}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$map\": {\"$foo\": 1}}]}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$map\": [[\"k\", 1]]}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$map\": [[\"k\"]]}]}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$map\": {\"r\": "
             "{\"ref\": \"a\"}}}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$map\": {\"r\": "
              "{\"$float\": \"x\"}}}]}")},
    {true, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$ndarray\": "
             "{\"dtype\": \"f64\", \"shape\": [2], \"data\": [1, 2.5]}}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$ndarray\": "
              "{\"dtype\": \"f65\", \"shape\": [2], \"data\": [1, 2]}}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$ndarray\": "
              "{\"dtype\": \"f64\", \"shape\": [-1], \"data\": []}}]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [{\"$ndarray\": "
              "{\"dtype\": \"f64\", \"data\": []}}]}")},
    /* maps */
    {true, T("\"a\": {\"map\": \"identity\", \"over\": [1, 2, 3], \"chunksize\": 2}")},
    {true, T("\"a\": {\"map\": \"mul\", \"over\": {\"range\": [0, 10, 3]}, "
             "\"args\": [{\"item\": true}, 2]}")},
    {true, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"map\": \"add\", "
             "\"over\": {\"ref\": \"a\"}, \"args\": [{\"ref\": \"a\", \"get\": 0}]}")},
    {true, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"map\": \"len\", "
             "\"over\": [{\"ref\": \"a\"}, [1]]}")},
    {false, T("\"a\": {\"map\": \"identity\"}")},
    {false, T("\"a\": {\"map\": \"identity\", \"over\": 3}")},
    {false, T("\"a\": {\"map\": \"identity\", \"over\": {\"range\": [1]}}")},
    {false, T("\"a\": {\"map\": \"identity\", \"over\": {\"range\": [1, 2.5]}}")},
    {false, T("\"a\": {\"map\": \"identity\", \"over\": [1], \"chunksize\": -1}")},
    {false, T("\"a\": {\"map\": \"identity\", \"fn\": \"identity\", \"over\": [1]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"over\": [1]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"chunksize\": 0}")},
    {false, T("\"a\": {\"fn\": \"range\", \"args\": [3]}, \"b\": {\"map\": \"len\", "
              "\"over\": {\"ref\": \"a\", \"get\": 0}}")},
    /* not JSON at all, or not strict JSON */
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1,]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [NaN]}")},
    {false, T("\"a\": {\"fn\": \"identity\", \"args\": [1], \"fn\": \"identity\"}")},
    {false, "[]"},
};
#define NSAMPLES (sizeof samples / sizeof samples[0])

/* The validator's verdicts, one "valid" or "invalid" line per file. */
static const char *const validator =
    "import json, sys, jsonschema\n"
    "def pairs(kv):\n"
    "    keys = [k for k, _ in kv]\n"
    "    if len(set(keys)) != len(keys): raise ValueError('duplicate key')\n"
    "    return dict(kv)\n"
    "def no_constant(c): raise ValueError(c)\n"
    "with open(sys.argv[1]) as f: schema = json.load(f)\n"
    "v = jsonschema.Draft202012Validator(schema)\n"
    "for path in sys.argv[2:]:\n"
    "    try:\n"
    "        with open(path, encoding='utf-8') as f:\n"
    "            doc = json.load(f, object_pairs_hook=pairs,\n"
    "                            parse_constant=no_constant)\n"
    "        ok = v.is_valid(doc)\n"
    "    except ValueError:\n"
    "        ok = False\n"
    "    print('valid' if ok else 'invalid')\n";

static bool reader_accepts(tg_registry *reg, const char *text, char *msg,
                           size_t size) {
  tg_graph *g;
  tg_error err;
  tg_error_clear(&err);
  tg_graphjson_opts o = {.version = TG_GRAPHJSON_OPTS_V1, .no_plugins = true};
  int rc = tg_graphjson_parse(text, strlen(text), "g.json", NULL, reg, &o, &g,
                              NULL, &err);
  snprintf(msg, size, "%s", rc == TG_OK ? "" : err.msg);
  tg_graph_free(g);
  return rc == TG_OK;
}

Test(graphjson_schema, schema_and_reader_agree) {
  const char *root = getenv("TG_SOURCE_ROOT");
  cr_assert_not_null(root, "TG_SOURCE_ROOT is not set");
  char dir[] = "/tmp/tg_schema_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  /* python3 -c SCRIPT SCHEMA FILE... */
  size_t cap = 256 + NSAMPLES * 64 + strlen(validator) * 2, n = 0;
  char *cmd = malloc(cap);
  n += (size_t)snprintf(cmd + n, cap - n, "python3 -c \"$TG_VALIDATOR\" "
                        "'%s/docs/graph.schema.json'", root);
  for (size_t i = 0; i < NSAMPLES; i++) {
    char path[64];
    snprintf(path, sizeof path, "%s/%zu.json", dir, i);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(samples[i].text, f);
    fclose(f);
    n += (size_t)snprintf(cmd + n, cap - n, " %s", path);
  }
  cr_assert_eq(setenv("TG_VALIDATOR", validator, 1), 0);
  FILE *out = popen(cmd, "r");
  cr_assert_not_null(out);
  tg_registry *reg;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  char line[64], msg[256];
  size_t i = 0;
  for (; i < NSAMPLES && fgets(line, sizeof line, out) != NULL; i++) {
    bool schema_ok = strcmp(line, "valid\n") == 0;
    cr_assert(schema_ok || strcmp(line, "invalid\n") == 0,
              "validator said '%s'", line);
    bool reader_ok = reader_accepts(reg, samples[i].text, msg, sizeof msg);
    cr_expect_eq(schema_ok, samples[i].good, "schema says %s: %s",
                 schema_ok ? "valid" : "invalid", samples[i].text);
    cr_expect_eq(reader_ok, samples[i].good, "reader says %s: %s",
                 reader_ok ? "valid" : msg, samples[i].text);
  }
  cr_assert_eq(pclose(out), 0, "python3 with jsonschema failed (installed?)");
  cr_assert_eq(i, NSAMPLES, "the validator gave %zu verdicts for %zu samples",
               i, NSAMPLES);
  tg_registry_free(reg);
  for (i = 0; i < NSAMPLES; i++) {
    char path[64];
    snprintf(path, sizeof path, "%s/%zu.json", dir, i);
    unlink(path);
  }
  rmdir(dir);
  free(cmd);
}
