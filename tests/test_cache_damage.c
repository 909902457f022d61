/* tests/test_cache_damage.c: a damaged data.mdb (truncated, zeroed pages,
 * flipped bytes) and a cache that cannot store (full file system, file
 * size limit) never cost a run its process or its answer. Every damaged
 * run is the tgraph program (TGRAPH_BIN) in a child process, so a crash
 * shows as a failed status, not as the end of this suite; the tests that
 * open a damaged cache through the library do it in a forked child too. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_cli_util.h"
#include "tgraph.h"

static char dir[64];          /* a fresh directory per test, also the cwd */
static const char *bin;
static bool mounted;          /* "tmpfs" is a mount point to undo */
static rlim_t fsize_limit;    /* RLIM_INFINITY, or the children's ulimit -f */

static void setup(void) {
  bin = tcli_bin();
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_damage_XXXXXX");
  unsetenv("TGRAPH_CACHE_DIR");
  unsetenv("NO_COLOR");
  mounted = false;
  fsize_limit = RLIM_INFINITY;
}

static void teardown(void) {
  if (mounted) cr_expect_eq(umount("tmpfs"), 0, "umount: %s", strerror(errno));
  tcli_leave_tmpdir(dir);
}

TestSuite(cache_damage, .init = setup, .fini = teardown, .timeout = 300);

typedef tcli_result result;

/* Run tgraph with the arguments; stdin is /dev/null, its file size
 * limit fsize_limit. */
#define run(...)                                                                       \
  tcli_run(bin, &(tcli_how){.fsize_limit = fsize_limit == RLIM_INFINITY ? 0 : fsize_limit}, \
           (char *const[]){"tgraph", __VA_ARGS__, NULL})

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
  return n;
}

static void sh(const char *fmt, ...) {
  char cmd[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static off_t file_size(const char *path) {
  struct stat st;
  cr_assert_eq(stat(path, &st), 0, "%s", path);
  return st.st_size;
}

/* g.json: 150 small cached results, two large ones (blob files) and a
 * total over all of them, so data.mdb spans many pages of every kind. */
static void write_graph(const char *path, int small, int big_len) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "{\"tgraph\": 1, \"tasks\": {\n");
  for (int i = 0; i < small; i++)
    fprintf(f, "\"n%d\": {\"fn\": \"range\", \"args\": [%d, %d], \"cache\": true},\n"
               "\"s%d\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"n%d\"}], \"cache\": true},\n",
            i, i, i + 40, i, i);
  for (int i = 0; i < 2; i++)
    fprintf(f, "\"big%d\": {\"fn\": \"range\", \"args\": [%d, %d], \"cache\": true},\n"
               "\"bs%d\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"big%d\"}], \"cache\": true},\n",
            i, i, i + big_len, i, i);
  fprintf(f, "\"all\": {\"fn\": \"identity\", \"args\": [[");
  for (int i = 0; i < small; i++) fprintf(f, "{\"ref\": \"s%d\"}, ", i);
  fprintf(f, "{\"ref\": \"bs0\"}, {\"ref\": \"bs1\"}]], \"cache\": true}\n");
  fprintf(f, "}, \"outputs\": [\"all\"]}\n");
  fclose(f);
}

static char *reference; /* the graph's output computed without a cache */

/* g.json, its reference output and a pristine cache "good" made by one run. */
static void prepare(void) {
  write_graph("g.json", 150, 30000);
  result r = run("run", "--no-cache", "g.json");
  cr_assert_eq(r.status, 0, "%s", r.err);
  reference = r.out;
  free(r.err);
  r = run("run", "--cache-dir", "good", "g.json");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, reference);
  tcli_result_free(&r);
  cr_assert_gt(file_size("good/data.mdb"), 20 * 4096, "data.mdb spans many pages");
}

/* A run on damaged cache `c`: never dies, prints the reference output;
 * the damage warning appears exactly `want` times (-1: at most once), and
 * when it appears it names c, what was wrong and where data.mdb went
 * (which must hold it). Returns whether it appeared. */
static bool run_damaged(const char *c, int want, const char *what) {
  result r = run("run", "--cache-dir", (char *)c, "g.json");
  cr_assert_eq(r.status, 0, "%s: status %d, stderr: %s", what, r.status, r.err);
  cr_assert_str_eq(r.out, reference, "%s: wrong output", what);
  size_t n = count(r.err, "damaged");
  char head[256], moved[256];
  snprintf(head, sizeof head, "tgraph: warning: cache directory %s was damaged (data.mdb: ",
           c);
  snprintf(moved, sizeof moved, "): moved data.mdb and lock.mdb to %s/damaged-", c);
  if (want >= 0) cr_assert_eq(n, (size_t)want * 2, "%s: stderr: %s", what, r.err);
  else cr_assert(n == 0 || n == 2, "%s: stderr: %s", what, r.err);
  bool warned = n > 0;
  if (warned) {
    cr_assert_eq(count(r.err, head), 1, "%s: stderr: %s", what, r.err);
    const char *m = strstr(r.err, moved);
    cr_assert_not_null(m, "%s: stderr: %s", what, r.err);
    cr_assert_not_null(strstr(r.err, " and started an empty cache\n"), "%s", r.err);
    char aside[256];
    const char *to = m + strlen("): moved data.mdb and lock.mdb to ");
    const char *end = strstr(to, " and started");
    snprintf(aside, sizeof aside, "%.*s/data.mdb", (int)(end - to), to);
    cr_assert_eq(access(aside, F_OK), 0, "%s: %s is missing", what, aside);
  }
  tcli_result_free(&r);
  /* The next run is served from the new cache, without a word. */
  r = run("run", "--cache-dir", (char *)c, "g.json");
  cr_assert_eq(r.status, 0, "%s: second run: %s", what, r.err);
  cr_assert_str_eq(r.out, reference, "%s: second run", what);
  cr_assert_eq(count(r.err, "warning"), 0, "%s: second run: %s", what, r.err);
  cr_assert_not_null(strstr(r.err, " 0 run, 1 cached, 0 failed"), "%s: %s", what, r.err);
  tcli_result_free(&r);
  return warned;
}

static void fresh_copy(const char *c) {
  sh("rm -rf %s && cp -a good %s", c, c);
}

static void truncate_to(const char *c, off_t len) {
  char path[128];
  snprintf(path, sizeof path, "%s/data.mdb", c);
  cr_assert_eq(truncate(path, len), 0);
}

/* Zero len bytes at off of c/data.mdb. */
static void zero_at(const char *c, off_t off, size_t len) {
  char path[128], *z = calloc(1, len);
  snprintf(path, sizeof path, "%s/data.mdb", c);
  int fd = open(path, O_WRONLY);
  cr_assert_geq(fd, 0);
  cr_assert_eq(pwrite(fd, z, len, off), (ssize_t)len);
  close(fd);
  free(z);
}

/* The page of the main database's root in c/data.mdb, read from the
 * newer of LMDB's two meta pages. Their layout (lmdb's mdb.c, 64-bit): a
 * 16-byte page header, then magic and version (4 bytes each), address
 * and map size (8 each), the free and the main database records (48
 * bytes each, md_root the last 8), last page and transaction id (8 each). */
static uint64_t main_root_page(const char *c) {
  char path[128];
  unsigned char meta[2][4096];
  snprintf(path, sizeof path, "%s/data.mdb", c);
  int fd = open(path, O_RDONLY);
  cr_assert_geq(fd, 0);
  cr_assert_eq(pread(fd, meta, sizeof meta, 0), (ssize_t)sizeof meta);
  close(fd);
  uint64_t txn[2], root[2];
  for (int i = 0; i < 2; i++) {
    memcpy(&root[i], meta[i] + 16 + 112, 8);
    memcpy(&txn[i], meta[i] + 16 + 128, 8);
  }
  return txn[1] > txn[0] ? root[1] : root[0];
}

static void flip_at(const char *c, off_t off, int bit) {
  char path[128];
  unsigned char b;
  snprintf(path, sizeof path, "%s/data.mdb", c);
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  cr_assert_eq(pread(fd, &b, 1, off), 1);
  b ^= (unsigned char)(1u << bit);
  cr_assert_eq(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

/* ---- truncation ------------------------------------------------------------ */

Test(cache_damage, truncated_to_any_length) {
  prepare();
  off_t size = file_size("good/data.mdb");
  struct { off_t len; const char *name; } cases[] = {
      {0, "0 bytes"},        {1, "1 byte"},           {2048, "half a page"},
      {4095, "4095 bytes"},  {size / 4, "a quarter"}, {size / 2, "half"},
      {size - 4096, "all but the last page"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char c[32];
    snprintf(c, sizeof c, "t%zu", i);
    fresh_copy(c);
    truncate_to(c, cases[i].len);
    /* The last page may be one LMDB allocated and no longer uses (a
     * freed page is never read): then nothing in use is lost and a
     * warning-free, correct run is right. Every other cut loses pages in
     * use. Either way the next run is correct and quiet. */
    bool maybe_unused = cases[i].len == size - 4096;
    run_damaged(c, maybe_unused ? -1 : 1, cases[i].name);
    run_damaged(c, 0, cases[i].name);
  }
}

Test(cache_damage, info_and_clear_work_on_a_damaged_cache) {
  prepare();
  const char *cmds[] = {"info", "clear", "list"};
  for (int i = 0; i < 3; i++) {
    fresh_copy("d");
    truncate_to("d", file_size("d/data.mdb") / 4);
    result r = run("cache", "--cache-dir", "d", (char *)cmds[i]);
    cr_assert_eq(r.status, 0, "%s: status %d: %s", cmds[i], r.status, r.err);
    cr_assert_eq(count(r.err, "tgraph: warning: cache directory d was damaged (data.mdb: "),
                 1, "%s: %s", cmds[i], r.err);
    cr_assert_not_null(strstr(r.err, "moved data.mdb and lock.mdb to d/damaged-"), "%s",
                       r.err);
    if (i == 0) cr_assert_not_null(strstr(r.out, "entries:   0\n"), "%s", r.out);
    if (i == 1) cr_assert_str_eq(r.out, "cleared d\n");
    tcli_result_free(&r);
  }
}

/* ---- zeroed pages ---------------------------------------------------------------- */

Test(cache_damage, zeroed_meta_pages) {
  prepare();
  const char *names[] = {"meta page 0", "meta page 1", "both meta pages"};
  for (int i = 0; i < 3; i++) {
    char c[8];
    snprintf(c, sizeof c, "z%d", i);
    fresh_copy(c);
    if (i != 1) zero_at(c, 0, 4096);
    if (i != 0) zero_at(c, 4096, 4096);
    run_damaged(c, 1, names[i]);
  }
}

Test(cache_damage, zeroed_data_pages) {
  prepare();
  off_t pages = file_size("good/data.mdb") / 4096;
  /* The main database's root page: zeroing it is always damage. (The
   * last page of the file may be one LMDB has freed.) */
  uint64_t root = main_root_page("good");
  cr_assert(root >= 2 && root < (uint64_t)pages, "root page %llu of %lld",
            (unsigned long long)root, (long long)pages);
  fresh_copy("root");
  zero_at("root", (off_t)root * 4096, 4096);
  run_damaged("root", 1, "the main database's root page zeroed");
  /* Any other page: damage when the trees use it, else harmless. */
  int warned = 0;
  for (off_t pg = 2; pg < pages; pg += pages / 12 + 1) {
    char c[32], what[64];
    snprintf(c, sizeof c, "p%lld", (long long)pg);
    snprintf(what, sizeof what, "page %lld zeroed", (long long)pg);
    fresh_copy(c);
    zero_at(c, pg * 4096, 4096);
    warned += run_damaged(c, -1, what);
  }
  cr_assert_gt(warned, 0, "some zeroed page was found");
}

/* ---- random bytes flipped -------------------------------------------------------- */

Test(cache_damage, random_flips_never_crash_or_lie) {
  prepare();
  off_t size = file_size("good/data.mdb");
  unsigned seed = 11;
  int warned = 0;
  for (int round = 0; round < 100; round++) {
    char what[64];
    fresh_copy("f");
    int flips = 1 + (round % 4) * 3; /* 1, 4, 7 or 10 bytes */
    for (int k = 0; k < flips; k++)
      flip_at("f", (off_t)(rand_r(&seed) % (unsigned)size), rand_r(&seed) % 8);
    snprintf(what, sizeof what, "round %d (seed 11, %d flips)", round, flips);
    warned += run_damaged("f", -1, what);
  }
  cr_assert_gt(warned, 5, "flips in reachable pages were found (%d of 100)", warned);
}

/* ---- through the library ----------------------------------------------------------- */

static int child_open_damaged(void) {
  tg_cache *c;
  tg_error err;
  if (tg_cache_open("lib", NULL, &c, &err) != TG_OK) return 10;
  const char *w = tg_cache_warning(c);
  if (!w || !strstr(w, "cache directory lib was damaged (data.mdb: ") ||
      !strstr(w, "moved data.mdb and lock.mdb to lib/damaged-"))
    return 11;
  tg_cache_info in;
  if (tg_cache_get_info(c, &in) != TG_OK || in.entries != 0) return 12;
  tg_digest k = {1, 2};
  tg_value *v = tg_int(42), *got = NULL;
  if (tg_cache_put(c, k, v, NULL) != TG_OK || tg_cache_flush(c) != TG_OK) return 13;
  if (tg_cache_get(c, k, &got) != TG_OK || !tg_value_equal(got, v)) return 14;
  tg_value_unref(got);
  tg_value_unref(v);
  tg_cache_close(c);
  /* Opening again: no warning, the new entry is there. */
  if (tg_cache_open("lib", NULL, &c, &err) != TG_OK || tg_cache_warning(c)) return 15;
  bool has = tg_cache_contains(c, k);
  tg_cache_close(c);
  return has ? 0 : 16;
}

Test(cache_damage, library_open_moves_a_damaged_environment_aside) {
  prepare();
  for (int i = 0; i < 2; i++) {
    fresh_copy("lib");
    if (i == 0) truncate_to("lib", file_size("lib/data.mdb") / 4);
    else zero_at("lib", 4096, 4096);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) _exit(child_open_damaged());
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "case %d: killed by signal %d", i,
              WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 0, "case %d: check %d failed", i, WEXITSTATUS(st));
  }
}

/* A cache written by several processes at once, pruned and closed in any
 * order is never mistaken for a damaged one (the walk runs when the stamp
 * does not match). */
Test(cache_damage, a_busy_cache_is_not_damage) {
  char name[32];
  for (int k = 0; k < 4; k++) {
    snprintf(name, sizeof name, "g%d.json", k);
    write_graph(name, 80 + 20 * k, 20000 + k);
  }
  for (int round = 0; round < 3; round++) {
    pid_t pids[4];
    for (int k = 0; k < 4; k++) {
      snprintf(name, sizeof name, "g%d.json", k);
      if ((pids[k] = fork()) == 0) {
        result r = run("run", "--cache-dir", "busy", name);
        _exit(r.status == 0 && !strstr(r.err, "warning") ? 0 : 1);
      }
    }
    for (int k = 0; k < 4; k++) {
      int st;
      cr_assert_eq(waitpid(pids[k], &st, 0), pids[k]);
      cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "round %d run %d", round, k);
    }
    result r = run("cache", "--cache-dir", "busy", "prune", "--max-size", "200K");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "");
    tcli_result_free(&r);
    unlink("busy/data.mdb.checked"); /* make the next open walk */
    r = run("cache", "--cache-dir", "busy", "info");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "", "round %d", round);
    tcli_result_free(&r);
  }
  DIR *d = opendir("busy");
  struct dirent *de;
  while ((de = readdir(d))) cr_assert(strncmp(de->d_name, "damaged-", 8), "%s", de->d_name);
  closedir(d);
}

/* ---- no room to store -------------------------------------------------------------- */

/* A graph whose results do not fit in 2 MiB. */
static void big_graph(void) {
  write_graph("g.json", 20, 20000);
  FILE *f = fopen("big.json", "w");
  cr_assert_not_null(f);
  fprintf(f, "{\"tgraph\": 1, \"tasks\": {\n");
  for (int i = 0; i < 40; i++)
    fprintf(f, "\"b%d\": {\"fn\": \"range\", \"args\": [%d, %d], \"cache\": true},\n"
               "\"s%d\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"b%d\"}], \"cache\": true},\n",
            i, i, i + 20000, i, i);
  fprintf(f, "\"all\": {\"fn\": \"identity\", \"args\": [[");
  for (int i = 0; i < 40; i++) fprintf(f, "%s{\"ref\": \"s%d\"}", i ? ", " : "", i);
  fprintf(f, "]], \"cache\": true}\n}, \"outputs\": [\"all\"]}\n");
  fclose(f);
  result r = run("run", "--no-cache", "big.json");
  cr_assert_eq(r.status, 0, "%s", r.err);
  reference = r.out;
  free(r.err);
}

/* A run on cache c: the right answer, and it says exactly once that
 * results are not being stored, with `why`. A second run (what the first
 * managed to store is served) is right too and says it at most once. */
static void expect_not_stored(const char *c, const char *why) {
  for (int i = 0; i < 2; i++) {
    result r = run("run", "-v", "--cache-dir", (char *)c, "big.json");
    cr_assert_eq(r.status, 0, "run %d: status %d: %s", i, r.status, r.err);
    cr_assert_str_eq(r.out, reference, "run %d", i);
    char want[256];
    snprintf(want, sizeof want, "tgraph: warning: cache directory %s: results are not "
             "being stored: %s (", c, why);
    size_t n = count(r.err, "not being stored");
    cr_assert(i == 0 ? n == 1 : n <= 1, "run %d: %s", i, r.err);
    cr_assert_eq(count(r.err, want), n, "run %d: %s", i, r.err);
    tcli_result_free(&r);
  }
}

Test(cache_damage, full_file_system_says_once_results_are_not_stored) {
  big_graph();
  cr_assert_eq(mkdir("tmpfs", 0755), 0);
  if (mount("tmpfs", "tmpfs", "tmpfs", 0, "size=2m")) {
    if (errno == EPERM) cr_skip_test("mounting a 2 MiB tmpfs: EPERM (needs root)");
    cr_assert_fail("mount: %s", strerror(errno));
  }
  mounted = true;
  expect_not_stored("tmpfs/c", "no space left on device");
}

Test(cache_damage, file_size_limit_says_once_results_are_not_stored) {
  big_graph();
  fsize_limit = 256 << 10;
  expect_not_stored("lim", "File too large");
}

/* ---- the stamp ------------------------------------------------------------------- */

/* A clean close leaves DIR/data.mdb.checked so the next open may skip the
 * walk; a file changed in place afterwards (same inode, new mtime) is
 * walked again and its damage found. */
Test(cache_damage, damage_after_a_clean_close_is_found) {
  prepare();
  cr_assert_eq(access("good/data.mdb.checked", F_OK), 0, "the stamp is written");
  /* A page the data is reached through (the last page of the file may
   * be one LMDB has freed: zeroing that damages nothing). */
  off_t pages = file_size("good/data.mdb") / 4096;
  uint64_t root = main_root_page("good");
  cr_assert(root >= 2 && root < (uint64_t)pages, "root page %llu of %lld",
            (unsigned long long)root, (long long)pages);
  zero_at("good", (off_t)root * 4096, 4096);
  run_damaged("good", 1, "the main database's root page zeroed in place");
}

/* ---- another program's lock file --------------------------------------------------- */

/* A process that holds c/lock.mdb as LMDB's readers do (a shared fcntl lock
 * on its first byte), so an open cannot take it alone and reinitialize it. */
static pid_t hold_lock_file(const char *c) {
  char path[128];
  int ready[2];
  snprintf(path, sizeof path, "%s/lock.mdb", c);
  cr_assert_eq(pipe(ready), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int fd = open(path, O_RDWR);
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    if (fd < 0 || fcntl(fd, F_SETLK, &fl)) _exit(1);
    close(ready[0]);
    if (write(ready[1], "y", 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(ready[1]);
  char b;
  cr_assert_eq(read(ready[0], &b, 1), 1, "the lock holder is ready");
  close(ready[0]);
  return pid;
}

/* lock.mdb whose format field (the u32 after the magic) is another LMDB
 * build's, held by a process: LMDB says MDB_VERSION_MISMATCH. That is
 * another program at work in the directory, not damage: nothing is moved,
 * the run goes without the cache saying so once, and its answer is right.
 * Once that program is gone the cache serves what it held. */
Test(cache_damage, another_lmdb_builds_lock_file_is_left_in_place) {
  prepare();
  int fd = open("good/lock.mdb", O_RDWR);
  cr_assert_geq(fd, 0);
  uint32_t head[2];
  cr_assert_eq(pread(fd, head, sizeof head, 0), (ssize_t)sizeof head);
  cr_assert_eq(head[0], 0xBEEFC0DEu, "lock.mdb starts with LMDB's magic");
  head[1] ^= 0x01000000u;
  cr_assert_eq(pwrite(fd, &head[1], 4, 4), 4);
  close(fd);
  off_t data_size = file_size("good/data.mdb");
  pid_t holder = hold_lock_file("good");

  result r = run("run", "--cache-dir", "good", "g.json");
  kill(holder, SIGKILL);
  waitpid(holder, NULL, 0);
  cr_assert_eq(r.status, 0, "status %d: %s", r.status, r.err);
  cr_assert_str_eq(r.out, reference);
  cr_assert_eq(count(r.err, "warning"), 1, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "tgraph: warning: cache directory good cannot be used "
                                   "(MDB_VERSION_MISMATCH: "), "%s", r.err);
  cr_assert_not_null(strstr(r.err, "): left as it is, running without the cache\n"), "%s",
                     r.err);
  cr_assert_eq(count(r.err, "damaged"), 0, "%s", r.err);
  tcli_result_free(&r);
  cr_assert_eq(file_size("good/data.mdb"), data_size, "data.mdb stays");
  fd = open("good/lock.mdb", O_RDONLY);
  cr_assert_geq(fd, 0, "lock.mdb stays");
  uint32_t now[2];
  cr_assert_eq(pread(fd, now, sizeof now, 0), (ssize_t)sizeof now);
  close(fd);
  cr_assert_eq(now[1], head[1], "lock.mdb is as the other program left it");
  DIR *d = opendir("good");
  struct dirent *de;
  while ((de = readdir(d))) cr_assert(strncmp(de->d_name, "damaged-", 8), "%s", de->d_name);
  closedir(d);

  r = run("run", "--cache-dir", "good", "g.json");
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_str_eq(r.out, reference);
  cr_assert_eq(count(r.err, "warning"), 0, "%s", r.err);
  cr_assert_not_null(strstr(r.err, " 0 run, 1 cached, 0 failed"), "%s", r.err);
  tcli_result_free(&r);
}
