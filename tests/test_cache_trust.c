/* tests/test_cache_trust.c: the cache never serves bytes that are not an
 * entry's own: blob files swapped or changed on disk are misses on both
 * read paths (mapped arrays, decompressed copies), tg_cache_check finds
 * and repairs bad entries, orphan blobs and abandoned temporary files, and
 * temporary files of writers that died (SIGKILL, the lock they held gone)
 * are swept at the next open while those of live writers stay. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tgraph/cache.h"
#include "tgraph/serial.h"
#include "tgraph/value.h"
#include "test_proc.h"

static char dir[256];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void make_dir(void) {
  strcpy(dir, "/tmp/tgtrust.XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
  if (dir[0]) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(cache_trust, .init = make_dir, .fini = remove_dir);

static tg_digest key_of(uint64_t i) { return (tg_digest){i, 0x7472757374ULL}; }

static tg_cache *open_ex(int compress, bool readonly, size_t inline_max) {
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .compress = compress,
                     .readonly = readonly, .inline_max = inline_max};
  tg_cache *c = NULL;
  tg_error err;
  cr_assert_eq(tg_cache_open(dir, &o, &c, &err), TG_OK, "open: %s", err.msg);
  return c;
}

static tg_cache *open_with(int compress, bool readonly) {
  return open_ex(compress, readonly, 0);
}

/* n doubles, each `fill` (compresses to the same size for any fill). */
static tg_value *filled(double fill, int64_t n) {
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t j = 0; j < n; j++) d[j] = fill;
  return a;
}

/* range(from, from + n) as a list of ints, as the builtin makes it. */
static tg_value *range(int64_t from, int64_t n) {
  tg_value *l = tg_list_alloc((size_t)n);
  cr_assert_not_null(l);
  for (int64_t i = 0; i < n; i++)
    cr_assert_eq(tg_list_init_item(l, (size_t)i, tg_int(from + i)), TG_OK);
  return l;
}

static void put(tg_cache *c, uint64_t k, tg_value *v) {
  cr_assert_eq(tg_cache_put(c, key_of(k), v, NULL), TG_OK);
  cr_assert_eq(tg_cache_flush(c), TG_OK, "%s", tg_cache_errmsg(c));
}

static off_t file_size(const char *path) {
  struct stat st;
  cr_assert_eq(stat(path, &st), 0, "%s", path);
  return st.st_size;
}

/* The blob files under DIR/blobs/??/, sorted; returns how many. */
static int blob_files(char out[][1100], int max) {
  char sub[300], p[560];
  int n = 0;
  snprintf(sub, sizeof sub, "%s/blobs", dir);
  DIR *d = opendir(sub);
  if (!d) return 0;
  struct dirent *e, *f;
  while ((e = readdir(d))) {
    if (strlen(e->d_name) != 2 || e->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", sub, e->d_name);
    DIR *d2 = opendir(p);
    while (d2 && (f = readdir(d2))) {
      if (f->d_name[0] == '.') continue;
      cr_assert_lt(n, max);
      snprintf(out[n++], 1100, "%s/%s", p, f->d_name);
    }
    if (d2) closedir(d2);
  }
  closedir(d);
  qsort(out, (size_t)n, 1100, (int (*)(const void *, const void *))strcmp);
  return n;
}

/* Files in DIR/blobs/tmp. */
static int tmp_count(void) {
  char p[300];
  snprintf(p, sizeof p, "%s/blobs/tmp", dir);
  DIR *d = opendir(p);
  if (!d) return 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

static void swap_files(const char *a, const char *b) {
  char t[1200];
  snprintf(t, sizeof t, "%s.swap", a);
  cr_assert_eq(rename(a, t), 0);
  cr_assert_eq(rename(b, a), 0);
  cr_assert_eq(rename(t, b), 0);
}

static void flip_middle(const char *path) {
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  off_t at = lseek(fd, 0, SEEK_END) / 2;
  unsigned char b;
  cr_assert_eq(pread(fd, &b, 1, at), 1);
  b ^= 0x10;
  cr_assert_eq(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

static void expect_miss_removed(tg_cache *c, uint64_t k) {
  tg_value *got = NULL;
  cr_assert_eq(tg_cache_get(c, key_of(k), &got), TG_ENOTFOUND, "key %d served", (int)k);
  cr_assert_null(got);
  cr_expect_neq(strstr(tg_cache_errmsg(c), "is corrupt: removed"), NULL, "%s",
                tg_cache_errmsg(c));
}

static void expect_hit(tg_cache *c, uint64_t k, tg_value *want) {
  tg_value *got = NULL;
  cr_assert_eq(tg_cache_get(c, key_of(k), &got), TG_OK, "%s", tg_cache_errmsg(c));
  cr_assert(tg_value_equal(got, want), "key %d: another value", (int)k);
  tg_value_unref(got);
}

/* Two blobs of one size swapped on disk: each is a valid encoding, which
 * the serializer's own checksums accept; only the entry's checksum tells. */
static void swapped(int compress, size_t inline_max, tg_value *a, tg_value *b) {
  tg_cache *c = open_ex(compress, false, inline_max);
  put(c, 1, a);
  put(c, 2, b);
  tg_cache_close(c);
  char f[4][1100];
  cr_assert_eq(blob_files(f, 4), 2);
  cr_assert_eq(file_size(f[0]), file_size(f[1]), "the test needs blobs of one size");
  swap_files(f[0], f[1]);

  c = open_ex(compress, false, inline_max);
  expect_miss_removed(c, 1);
  expect_miss_removed(c, 2);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  tg_cache_counters k;
  tg_cache_get_counters(c, &k);
  cr_assert_eq(k.corrupt, 2);
  cr_assert_eq(k.hits, 0);
  cr_assert_not(tg_cache_contains(c, key_of(1)), "bad entry removed");
  cr_assert_not(tg_cache_contains(c, key_of(2)), "bad entry removed");
  cr_assert_eq(blob_files(f, 4), 0, "their files removed");
  put(c, 1, a); /* recomputed and stored again: good files */
  put(c, 2, b);
  expect_hit(c, 1, a);
  expect_hit(c, 2, b);
  tg_cache_close(c);
}

Test(cache_trust, swapped_blobs_are_misses_on_the_mapped_path) {
  tg_value *a = range(0, 30000), *b = range(1, 30000);
  swapped(0, 0, a, b);
  tg_value_unref(a);
  tg_value_unref(b);
}

Test(cache_trust, swapped_blobs_are_misses_on_the_decompressing_path) {
  /* Compressed, they are a few hundred bytes: blobs only below a small
   * inline_max. */
  tg_value *a = filled(1.0, 200000), *b = filled(1.5, 200000);
  swapped(3, 64, a, b);
  tg_value_unref(a);
  tg_value_unref(b);
}

static void flipped(int compress) {
  tg_cache *c = open_with(compress, false);
  tg_value *a = range(5, 40000);
  put(c, 1, a);
  char f[2][1100];
  cr_assert_eq(blob_files(f, 2), 1);
  flip_middle(f[0]);
  expect_miss_removed(c, 1);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_not(tg_cache_contains(c, key_of(1)));
  cr_assert_neq(access(f[0], F_OK), 0, "the bad file is removed");
  put(c, 1, a);
  expect_hit(c, 1, a);
  tg_value_unref(a);
  tg_cache_close(c);
}

Test(cache_trust, flipped_byte_is_a_miss_on_the_mapped_path) { flipped(0); }
Test(cache_trust, flipped_byte_is_a_miss_on_the_decompressing_path) { flipped(3); }

/* ---- temporary files ------------------------------------------------------ */

/* A child that creates DIR/blobs/tmp/<name>, locks it as a writer does,
 * tells the parent and waits to be killed. */
static pid_t locking_child(const char *name) {
  char p[1100];
  int pipefd[2];
  snprintf(p, sizeof p, "%s/blobs", dir);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/blobs/tmp", dir);
  mkdir(p, 0755);
  snprintf(p, sizeof p, "%s/blobs/tmp/%s", dir, name);
  cr_assert_eq(pipe(pipefd), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    int fd = open(p, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || flock(fd, LOCK_EX) || write(fd, "part", 4) != 4) _exit(1);
    if (write(pipefd[1], "x", 1) != 1) _exit(1);
    for (;;) pause();
  }
  close(pipefd[1]);
  char x;
  cr_assert_eq(read(pipefd[0], &x, 1), 1, "the child locked its file");
  close(pipefd[0]);
  return pid;
}

static void kill_wait(pid_t pid) {
  cr_assert_eq(kill(pid, SIGKILL), 0);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
}

static bool tmp_exists(const char *name) {
  char p[1100];
  snprintf(p, sizeof p, "%s/blobs/tmp/%s", dir, name);
  return access(p, F_OK) == 0;
}

Test(cache_trust, open_sweeps_tmp_files_of_dead_writers_only) {
  const char *dead = "0123.tmp.deadAA", *live = "4567.tmp.liveBB";
  pid_t d = locking_child(dead), l = locking_child(live);
  kill_wait(d);
  cr_assert(tmp_exists(dead) && tmp_exists(live));
  tg_cache *c = open_with(0, false);
  cr_assert_not(tmp_exists(dead), "the killed writer's file is swept at open");
  cr_assert(tmp_exists(live), "a live writer's file stays");
  tg_cache_close(c);
  kill_wait(l);
  c = open_with(0, false);
  cr_assert_not(tmp_exists(live), "swept once its writer is gone");
  tg_cache_close(c);
}

Test(cache_trust, read_only_open_leaves_tmp_files) {
  const char *dead = "0123.tmp.deadCC";
  kill_wait(locking_child(dead));
  tg_cache *c = open_with(0, true);
  cr_assert(tmp_exists(dead), "a read-only open changes nothing");
  tg_cache_close(c);
}

/* A real writer killed while it writes a blob: its temporary file is
 * there, and the next open removes it. */
Test(cache_trust, writer_killed_mid_blob_leaves_nothing_after_open) {
  tg_cache *c = open_with(0, false); /* makes the directory */
  tg_cache_close(c);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    tg_cache *w = NULL;
    if (tg_cache_open(dir, NULL, &w, NULL)) _exit(1);
    tg_value *big = filled(3.0, 16 << 20); /* 128 MB: a slow write */
    for (uint64_t i = 0;; i++) {
      double *d = tg_ndarray_data_mut(big);
      d[0] = (double)i; /* another blob each time */
      tg_cache_put(w, key_of(100 + i), big, NULL);
      tg_cache_flush(w);
    }
  }
  int tries = 0;
  while (tmp_count() == 0 && tries++ < 110000) usleep(500);
  kill_wait(pid);
  cr_assert_eq(tmp_count() >= 1, true, "caught the writer mid-blob");
  c = open_with(0, false);
  cr_assert_eq(tmp_count(), 0, "swept at open");
  tg_cache_close(c);
}

/* ---- tg_cache_check ---------------------------------------------------------- */

/* Problems seen, and the last one's what and path per fault kind. */
typedef struct seen {
  int n, entry, orphan, tmp, repaired;
  char what[4][300], path[4][1100];
} seen;

static void on_problem(void *ctx, const tg_cache_problem *p) {
  seen *s = ctx;
  cr_assert(p->fault >= 1 && p->fault <= 3, "fault %d", (int)p->fault);
  snprintf(s->what[p->fault], 300, "%s", p->what);
  snprintf(s->path[p->fault], 1100, "%s", p->path ? p->path : "");
  s->n++;
  s->entry += p->fault == TG_CACHE_FAULT_ENTRY;
  s->orphan += p->fault == TG_CACHE_FAULT_ORPHAN;
  s->tmp += p->fault == TG_CACHE_FAULT_TMP;
  s->repaired += p->repaired;
}

static void fill_cache(tg_cache *c) {
  tg_value *small = tg_int(42), *a = range(0, 30000), *b = range(1, 30000);
  put(c, 1, small);
  put(c, 2, a);
  put(c, 3, b);
  tg_value_unref(small);
  tg_value_unref(a);
  tg_value_unref(b);
}

Test(cache_trust, check_of_a_clean_cache_finds_nothing) {
  tg_cache *c = open_with(0, false);
  fill_cache(c);
  seen s = {0};
  tg_cache_check_report r;
  cr_assert_eq(tg_cache_check(c, 0, on_problem, &s, &r), TG_OK, "%s", tg_cache_errmsg(c));
  cr_assert_eq(s.n, 0);
  cr_assert_eq(r.entries, 3);
  cr_assert_eq(r.blob_files, 2);
  cr_assert_eq(r.bad_entries + r.orphan_blobs + r.stale_tmp + r.repaired, 0);
  tg_value *got;
  cr_assert_eq(tg_cache_get(c, key_of(2), &got), TG_OK, "check changed nothing");
  tg_value_unref(got);
  tg_cache_close(c);
}

Test(cache_trust, check_reports_and_repairs_every_kind_of_problem) {
  tg_cache *c = open_with(0, false);
  fill_cache(c);
  char f[4][1100], orphan[1100], stale[1100];
  cr_assert_eq(blob_files(f, 4), 2);
  flip_middle(f[0]);
  snprintf(orphan, sizeof orphan, "%s/blobs/ee", dir);
  mkdir(orphan, 0755);
  snprintf(orphan, sizeof orphan, "%s/blobs/ee/%030d", dir, 7);
  FILE *o = fopen(orphan, "w");
  cr_assert_not_null(o);
  fputs("junk", o);
  fclose(o);
  /* Written without a lock after the open's sweep, like a dead writer's. */
  snprintf(stale, sizeof stale, "%s/blobs/tmp/abcd.tmp.staleX", dir);
  o = fopen(stale, "w");
  cr_assert_not_null(o);
  fclose(o);
  pid_t live = locking_child("ef01.tmp.liveXX");

  seen s = {0};
  tg_cache_check_report r;
  cr_assert_eq(tg_cache_check(c, 0, on_problem, &s, &r), TG_OK, "%s", tg_cache_errmsg(c));
  cr_assert_eq(s.n, 3);
  cr_assert_eq(s.entry, 1);
  cr_assert_eq(s.orphan, 1);
  cr_assert_eq(s.tmp, 1, "only the file without a writer");
  cr_assert_eq(s.repaired, 0);
  cr_assert_eq(r.entries, 3);
  cr_assert_eq(r.blob_files, 3);
  cr_assert_eq(r.bad_entries, 1);
  cr_assert_eq(r.orphan_blobs, 1);
  cr_assert_eq(r.stale_tmp, 1);
  cr_assert_eq(r.repaired, 0);
  cr_assert_str_eq(s.path[TG_CACHE_FAULT_ENTRY], f[0], "the entry's blob file is named");
  cr_assert_neq(strstr(s.what[TG_CACHE_FAULT_ENTRY], "content checksum"), NULL, "%s",
                s.what[TG_CACHE_FAULT_ENTRY]);
  cr_assert_str_eq(s.what[TG_CACHE_FAULT_ORPHAN], "blob file no entry refers to");
  cr_assert_str_eq(s.path[TG_CACHE_FAULT_ORPHAN], orphan);
  cr_assert_str_eq(s.what[TG_CACHE_FAULT_TMP], "temporary file whose writer is gone");
  cr_assert_str_eq(s.path[TG_CACHE_FAULT_TMP], stale);
  cr_assert_eq(access(f[0], F_OK), 0, "without repair nothing is removed");
  cr_assert_eq(access(orphan, F_OK), 0);
  cr_assert_eq(access(stale, F_OK), 0);

  memset(&s, 0, sizeof s);
  cr_assert_eq(tg_cache_check(c, TG_CACHE_CHECK_REPAIR, on_problem, &s, &r), TG_OK);
  cr_assert_eq(s.n, 3);
  cr_assert_eq(s.repaired, 3);
  cr_assert_eq(r.repaired, 3);
  cr_assert_neq(access(f[0], F_OK), 0, "bad blob removed");
  cr_assert_neq(access(orphan, F_OK), 0, "orphan removed");
  cr_assert_neq(access(stale, F_OK), 0, "abandoned temporary file removed");
  cr_assert(tmp_exists("ef01.tmp.liveXX"), "the live writer's file stays");
  cr_assert_eq(access(f[1], F_OK), 0, "the good blob stays");

  memset(&s, 0, sizeof s);
  cr_assert_eq(tg_cache_check(c, 0, on_problem, &s, &r), TG_OK);
  cr_assert_eq(s.n, 0, "clean after the repair");
  cr_assert_eq(r.entries, 2);
  cr_assert_eq(r.blob_files, 1);
  kill_wait(live);
  tg_cache_close(c);
}

Test(cache_trust, check_repair_needs_a_writable_cache) {
  tg_cache *c = open_with(0, false);
  fill_cache(c);
  tg_cache_close(c);
  c = open_with(0, true);
  tg_cache_check_report r;
  cr_assert_eq(tg_cache_check(c, TG_CACHE_CHECK_REPAIR, NULL, NULL, &r), TG_EACCES);
  cr_assert_neq(strstr(tg_cache_errmsg(c), "read-only: cannot repair"), NULL, "%s",
                tg_cache_errmsg(c));
  cr_assert_eq(tg_cache_check(c, 0, NULL, NULL, &r), TG_OK, "checking is fine");
  cr_assert_eq(r.entries, 3);
  cr_assert_eq(tg_cache_check(c, 4, NULL, NULL, &r), TG_EINVAL, "unknown flag");
  tg_cache_close(c);
}

/* Another process stores, replaces and removes blobs all along: the check
 * never takes its work in progress (a blob renamed into place whose entry
 * is not committed yet, a temporary file being written, an entry removed
 * between its record and its file) for a problem. */
Test(cache_trust, check_beside_a_busy_writer_reports_nothing) {
  tg_cache *c = open_with(0, false);
  int pipefd[2];
  cr_assert_eq(pipe(pipefd), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    tg_cache *w = NULL;
    if (tg_cache_open(dir, NULL, &w, NULL)) _exit(1);
    tg_value *a = filled(0.0, 20000); /* 160 KB: a blob */
    double *d = tg_ndarray_data_mut(a);
    for (uint64_t i = 0;; i++) {
      d[0] = (double)i;
      tg_cache_put(w, key_of(i % 40), a, NULL); /* replaces after 40 */
      if (i % 3 == 0) tg_cache_remove(w, key_of((i + 20) % 40));
      if (i % 5 == 0) tg_cache_flush(w);
      if (i == 50 && write(pipefd[1], "x", 1) != 1) _exit(1);
    }
  }
  close(pipefd[1]);
  char x;
  cr_assert_eq(read(pipefd[0], &x, 1), 1, "the writer is at work");
  close(pipefd[0]);
  uint64_t seen_entries = 0;
  for (int round = 0; round < 30; round++) {
    seen s = {0};
    tg_cache_check_report r;
    cr_assert_eq(tg_cache_check(c, 0, on_problem, &s, &r), TG_OK, "%s", tg_cache_errmsg(c));
    cr_assert_eq(s.n, 0, "round %d: %s %s", round,
                 s.what[TG_CACHE_FAULT_ENTRY][0] ? s.what[TG_CACHE_FAULT_ENTRY]
                                                 : s.path[TG_CACHE_FAULT_ORPHAN],
                 s.path[TG_CACHE_FAULT_TMP]);
    seen_entries += r.entries;
  }
  kill_wait(pid);
  cr_assert_gt(seen_entries, 0, "the checks saw the writer's entries");
  tg_cache_close(c);
}

/* A check that cannot read DIR/blobs fails naming it, and ends the write
 * transaction and the map lock it took: a store after it commits (a
 * regression hangs, and the alarm fails the test). */
Test(cache_trust, check_that_cannot_read_blobs_fails_and_releases_its_locks) {
  tg_cache *c = open_with(0, false);
  tg_value *small = tg_int(42);
  put(c, 1, small);
  char blobs[400];
  snprintf(blobs, sizeof blobs, "%s/blobs", dir);
  nftw(blobs, rm_one, 16, FTW_DEPTH | FTW_PHYS); /* made at open, or on demand */
  cr_assert_neq(access(blobs, F_OK), 0);
  FILE *f = fopen(blobs, "w");
  cr_assert_not_null(f);
  fputs("not a directory", f);
  fclose(f);

  alarm(60);
  seen s = {0};
  int rc = tg_cache_check(c, 0, on_problem, &s, NULL);
  cr_assert_neq(rc, TG_OK, "an unreadable blobs directory is an error");
  char want[600];
  snprintf(want, sizeof want, "cannot read %s: ", blobs);
  cr_assert_neq(strstr(tg_cache_errmsg(c), want), NULL, "%s", tg_cache_errmsg(c));
  cr_assert_eq(s.n, 0);

  tg_value *seven = tg_int(7);
  put(c, 2, seven);
  tg_value *got;
  cr_assert_eq(tg_cache_get(c, key_of(2), &got), TG_OK, "%s", tg_cache_errmsg(c));
  cr_assert(tg_value_equal(got, seven));
  alarm(0);
  tg_value_unref(got);
  tg_value_unref(seven);
  tg_value_unref(small);
  tg_cache_close(c);
}
