/* tests/test_cache_fs.c: a cache directory on a network or FUSE file
 * system is refused (tg_cache_open and the tgraph program) with a message
 * naming the directory, the type and the fix, and creates nothing; forcing
 * it (tg_cache_opts.allow_network_fs, TGRAPH_CACHE_ON_NETWORK_FS=1,
 * --cache-on-network-fs) opens it; local file systems open as before.
 *
 * The file system type is injected with TGRAPH_TEST_CACHE_FS_TYPE, which
 * the library adds to the real statfs type (either one refused refuses):
 * each test runs in its own process, so setenv stays within the test. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_cli_util.h"
#include "tgraph.h"

static char dir[64]; /* a fresh directory per test, also the cwd */

static void setup(void) {
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_cachefs_XXXXXX");
  unsetenv("TGRAPH_CACHE_DIR");
  unsetenv("TGRAPH_CACHE_ON_NETWORK_FS");
  unsetenv("TGRAPH_TEST_CACHE_FS_TYPE");
  unsetenv("NO_COLOR");
}

static void teardown(void) { tcli_leave_tmpdir(dir); }

TestSuite(cache_fs, .init = setup, .fini = teardown, .timeout = 120);

#define FIX                                                                  \
  "use a local --cache-dir or TGRAPH_CACHE_DIR, or force it with "            \
  "--cache-on-network-fs or TGRAPH_CACHE_ON_NETWORK_FS=1"

typedef struct fs_case {
  const char *magic; /* as TGRAPH_TEST_CACHE_FS_TYPE */
  const char *name;  /* as the message names it */
  const char *what;
} fs_case;

#define NET "a network file system"
static const fs_case refused[] = {
    {"0x6969", "NFS", NET},           {"0x517b", "SMB", NET},
    {"0xff534d42", "CIFS/SMB", NET},  {"0xfe534d42", "SMB2/3", NET},
    {"0xbd00bd0", "Lustre", NET},     {"0x47504653", "GPFS", NET},
    {"0x19830326", "BeeGFS", NET},    {"0xc36400", "CephFS", NET},
    {"0x5346414f", "AFS", NET},       {"0x6b414653", "AFS", NET},
    {"0xaad7aaea", "PanFS", NET},     {"0x20030528", "OrangeFS", NET},
    {"0x65735546", "FUSE", "a user-space file system"},
};

/* The entries of the current directory, sorted, one per line. */
static const char *listing(void) {
  static char out[4096];
  struct dirent **names;
  int n = scandir(".", &names, NULL, alphasort);
  cr_assert_geq(n, 0);
  out[0] = '\0';
  for (int i = 0; i < n; i++) {
    if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
      strncat(out, names[i]->d_name, sizeof out - strlen(out) - 2);
      strcat(out, "\n");
    }
    free(names[i]);
  }
  free(names);
  return out;
}

static void expect_refused(const char *path, const tg_cache_opts *o, const fs_case *k) {
  tg_cache *c = (tg_cache *)1;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_cache_open(path, o, &c, &err);
  cr_assert_eq(rc, -EREMOTE, "%s: %s (%s)", k->name, tg_strerror(rc), err.msg);
  cr_expect_null(c);
  char want[512];
  snprintf(want, sizeof want,
           "cache directory %s is on %s (statfs type %s): LMDB is not safe on %s; " FIX,
           path, k->name, k->magic, k->what);
  cr_expect_str_eq(err.msg, want);
}

Test(cache_fs, every_listed_type_is_refused_and_nothing_is_created) {
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    setenv("TGRAPH_TEST_CACHE_FS_TYPE", refused[i].magic, 1);
    expect_refused("cache", NULL, &refused[i]);          /* missing: "." decides */
    expect_refused("a/b/cache/", NULL, &refused[i]);     /* nearest parent: "." */
  }
  cr_expect_str_eq(listing(), "");
}

Test(cache_fs, the_message_is_exact) {
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x6969", 1);
  tg_cache *c;
  tg_error err;
  cr_assert_eq(tg_cache_open("nfs/cache", NULL, &c, &err), -EREMOTE);
  cr_expect_str_eq(err.msg,
                   "cache directory nfs/cache is on NFS (statfs type 0x6969): LMDB is "
                   "not safe on a network file system; use a local --cache-dir or "
                   "TGRAPH_CACHE_DIR, or force it with --cache-on-network-fs or "
                   "TGRAPH_CACHE_ON_NETWORK_FS=1");
  cr_expect_str_eq(tg_strerror(-EREMOTE), "Object is remote");
}

Test(cache_fs, an_existing_directory_is_refused_and_left_as_it_was) {
  cr_assert_eq(mkdir("cache", 0755), 0);
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x0BD00BD0", 1);
  expect_refused("cache", NULL, &refused[4]);
  cr_assert_eq(chdir("cache"), 0);
  cr_expect_str_eq(listing(), "");
  cr_assert_eq(chdir(".."), 0);
}

Test(cache_fs, a_long_directory_name_keeps_the_type_and_the_fix) {
  char path[400];
  memset(path, 'd', sizeof path - 1);
  path[sizeof path - 1] = '\0';
  for (size_t i = 50; i < sizeof path - 1; i += 50) path[i] = '/';
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x47504653", 1);
  tg_cache *c;
  tg_error err;
  cr_assert_eq(tg_cache_open(path, NULL, &c, &err), -EREMOTE);
  cr_expect_eq(strlen(err.msg), sizeof err.msg - 1, "%s", err.msg);
  cr_expect(strncmp(err.msg, "cache directory dddd", 20) == 0, "%s", err.msg);
  cr_expect_not_null(strstr(err.msg, "d...d"), "%s", err.msg);
  cr_expect_not_null(strstr(err.msg, "dd is on GPFS (statfs type 0x47504653): "), "%s",
                     err.msg);
  size_t n = strlen(err.msg), f = strlen(FIX);
  cr_expect_str_eq(err.msg + n - f, FIX);
}

static void put_and_get(tg_cache *c) {
  tg_digest k = {1, 2};
  tg_value *v = tg_int(42), *got = NULL;
  cr_assert_eq(tg_cache_put(c, k, v, NULL), TG_OK);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_eq(tg_cache_get(c, k, &got), TG_OK);
  cr_expect_eq(tg_value_int(got), 42);
  tg_value_unref(v);
  tg_value_unref(got);
}

Test(cache_fs, forced_by_the_option_it_opens) {
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x6969", 1);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V2, .allow_network_fs = true};
  tg_cache *c = NULL;
  tg_error err;
  cr_assert_eq(tg_cache_open("cache", &o, &c, &err), TG_OK, "%s", err.msg);
  cr_expect_null(tg_cache_warning(c));
  put_and_get(c);
  tg_cache_close(c);
}

Test(cache_fs, a_v1_options_struct_cannot_force_it) {
  /* allow_network_fs is read only from TG_CACHE_OPTS_V2 on: an older
   * caller's struct ends before it. */
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x6969", 1);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .allow_network_fs = true};
  expect_refused("cache", &o, &refused[0]);
}

Test(cache_fs, forced_by_the_environment_it_opens) {
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x65735546", 1);
  setenv("TGRAPH_CACHE_ON_NETWORK_FS", "1", 1);
  tg_cache *c = NULL;
  tg_error err;
  cr_assert_eq(tg_cache_open("cache", NULL, &c, &err), TG_OK, "%s", err.msg);
  put_and_get(c);
  tg_cache_close(c);
  setenv("TGRAPH_CACHE_ON_NETWORK_FS", "0", 1);
  expect_refused("cache", NULL, &refused[12]);
  setenv("TGRAPH_CACHE_ON_NETWORK_FS", "", 1);
  expect_refused("cache", NULL, &refused[12]);
}

Test(cache_fs, bad_environment_values_are_errors) {
  tg_cache *c;
  tg_error err;
  setenv("TGRAPH_CACHE_ON_NETWORK_FS", "yes", 1);
  cr_assert_eq(tg_cache_open("cache", NULL, &c, &err), TG_EINVAL);
  cr_expect_str_eq(err.msg, "cache: TGRAPH_CACHE_ON_NETWORK_FS must be 0 or 1, not 'yes'");
  unsetenv("TGRAPH_CACHE_ON_NETWORK_FS");
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "nfs", 1);
  cr_assert_eq(tg_cache_open("cache", NULL, &c, &err), TG_EINVAL);
  cr_expect_str_eq(err.msg, "cache: TGRAPH_TEST_CACHE_FS_TYPE must be a file system "
                            "magic number such as 0x6969, not 'nfs'");
  cr_expect_str_eq(listing(), "");
}

static void expect_opens(const char *path) {
  tg_cache *c = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_cache_open(path, NULL, &c, &err), TG_OK, "%s: %s", path, err.msg);
  put_and_get(c);
  tg_cache_close(c);
}

Test(cache_fs, local_types_open) {
  static const char *const local[] = {"0xEF53" /* ext2/3/4 */, "0x01021994" /* tmpfs */,
                                      "0x58465342" /* xfs */, "0x9123683E" /* btrfs */,
                                      "0x01021997" /* 9p: not refused */};
  for (size_t i = 0; i < sizeof local / sizeof local[0]; i++) {
    char path[32];
    snprintf(path, sizeof path, "cache%zu", i);
    setenv("TGRAPH_TEST_CACHE_FS_TYPE", local[i], 1);
    expect_opens(path);
  }
}

Test(cache_fs, a_real_tmpfs_opens) {
  char shm[] = "/dev/shm/tg_cachefs_XXXXXX";
  if (!mkdtemp(shm)) cr_skip_test("no /dev/shm: %s", strerror(errno));
  char path[64];
  snprintf(path, sizeof path, "%s/cache", shm);
  expect_opens(path);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", shm);
  cr_expect_eq(system(cmd), 0);
}

/* ---- the tgraph program ---------------------------------------------------- */

#define GRAPH "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [1, 2]}}, " \
              "\"outputs\": [\"a\"]}\n"
#define run(...) \
  tcli_run(tcli_bin(), &(tcli_how){.timeout = 60}, (char *const[]){"tgraph", __VA_ARGS__, NULL})

Test(cache_fs, run_refuses_with_the_message_and_creates_nothing) {
  tcli_write_file("g.json", GRAPH);
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x6969", 1);
  tcli_result r = run("run", "g.json", "--cache-dir", "nfs/cache");
  tcli_expect(r, 2, "",
              "tgraph: error: cannot open the cache: cache directory nfs/cache is on NFS "
              "(statfs type 0x6969): LMDB is not safe on a network file system; " FIX "\n");
  tcli_result_free(&r);
  /* The default directory is no exception: running without the cache
   * would hide the problem. */
  setenv("TGRAPH_CACHE_DIR", "env/cache", 1);
  r = run("run", "g.json");
  tcli_expect(r, 2, "",
              "tgraph: error: cannot open the cache: cache directory env/cache is on NFS "
              "(statfs type 0x6969): LMDB is not safe on a network file system; " FIX "\n");
  tcli_result_free(&r);
  cr_expect_str_eq(listing(), "g.json\n");
}

Test(cache_fs, run_forced_by_the_flag_or_the_environment) {
  tcli_write_file("g.json", GRAPH);
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x65735546", 1);
  tcli_result r = run("run", "-q", "g.json", "--cache-dir", "c1", "--cache-on-network-fs");
  tcli_expect(r, 0, "{\"a\":3}\n", "");
  tcli_result_free(&r);
  setenv("TGRAPH_CACHE_ON_NETWORK_FS", "1", 1);
  r = run("run", "-q", "g.json", "--cache-dir", "c2");
  tcli_expect(r, 0, "{\"a\":3}\n", "");
  tcli_result_free(&r);
  cr_expect_str_eq(listing(), "c1\nc2\ng.json\n");
  setenv("TGRAPH_CACHE_ON_NETWORK_FS", "true", 1);
  r = run("run", "-q", "g.json", "--cache-dir", "c3");
  tcli_expect(r, 2, "",
              "tgraph: error: cannot open the cache: cache: TGRAPH_CACHE_ON_NETWORK_FS "
              "must be 0 or 1, not 'true'\n");
  tcli_result_free(&r);
}

Test(cache_fs, cache_command_refuses_and_can_be_forced) {
  cr_assert_eq(mkdir("cache", 0755), 0);
  setenv("TGRAPH_TEST_CACHE_FS_TYPE", "0x47504653", 1);
  tcli_result r = run("cache", "info", "--cache-dir", "cache");
  tcli_expect(r, 1, "",
              "tgraph: error: cannot open the cache: cache directory cache is on GPFS "
              "(statfs type 0x47504653): LMDB is not safe on a network file system; " FIX
              "\n");
  tcli_result_free(&r);
  cr_assert_eq(chdir("cache"), 0);
  cr_expect_str_eq(listing(), "");
  cr_assert_eq(chdir(".."), 0);
  r = run("cache", "--cache-on-network-fs", "info", "--cache-dir", "cache");
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect(strncmp(r.out, "directory: cache\nentries:   0\n", 30) == 0, "%s", r.out);
  tcli_result_free(&r);
}

Test(cache_fs, help_names_the_flag) {
  tcli_result r = run("run", "--help");
  cr_expect_eq(r.status, 0);
  cr_expect_not_null(strstr(r.out, "--cache-on-network-fs"), "%s", r.out);
  tcli_result_free(&r);
}
