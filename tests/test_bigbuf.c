/* tests/test_bigbuf.c: the pool of large receive buffers
 * (lib/util/bigbuf.h): reuse by size, what is never kept, the slot limit,
 * trimming, the idle limit and forked children. A buffer's being mapped
 * is asked of the kernel (msync fails with ENOMEM on unmapped pages). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_funcs.h"
#include "util/bigbuf.h"

#define MIB ((size_t)1 << 20)

static bool mapped(void *p) { return msync(p, 4096, MS_ASYNC) == 0 || errno != ENOMEM; }

static void *take(size_t len, size_t *cap) {
  void *p = tg__bigbuf_alloc(len, cap);
  cr_assert_not_null(p);
  cr_assert_eq((uintptr_t)p % 4096, 0, "page-aligned");
  cr_assert_geq(*cap, len);
  memset(p, 0x5a, len); /* writable, every page */
  return p;
}

static void fresh(void) { tg__bigbuf_trim(); }

TestSuite(bigbuf, .init = fresh, .fini = fresh);

Test(bigbuf, a_freed_buffer_serves_the_next_similar_size) {
  size_t cap, cap2, cap3;
  void *p = take(8 * MIB, &cap);
  cr_expect_eq(cap, 8 * MIB);
  tg__bigbuf_free(p, cap);
  cr_expect(mapped(p), "kept");
  void *q = take(7 * MIB, &cap2); /* 3/4 of it or more: reused whole */
  cr_expect_eq(q, p);
  cr_expect_eq(cap2, 8 * MIB);
  tg__bigbuf_free(q, cap2);
  void *r = take(5 * MIB, &cap3); /* under 3/4: a buffer of its own */
  cr_expect_neq(r, p);
  cr_expect_eq(cap3, 5 * MIB);
  tg__bigbuf_free(r, cap3);
  void *s = take(9 * MIB, &cap); /* bigger than any kept one */
  cr_expect(s != p && s != r);
  tg__bigbuf_free(s, cap);
}

Test(bigbuf, small_buffers_are_not_kept) {
  size_t cap;
  void *p = take(TG__BIGBUF_MIN - 4096, &cap);
  tg__bigbuf_free(p, cap);
  cr_expect(!mapped(p), "unmapped at once");
}

Test(bigbuf, the_oldest_goes_when_slots_run_out) {
  void *p[TG__BIGBUF_SLOTS + 1];
  size_t cap[TG__BIGBUF_SLOTS + 1];
  for (int i = 0; i <= TG__BIGBUF_SLOTS; i++) p[i] = take(2 * MIB, &cap[i]);
  for (int i = 0; i <= TG__BIGBUF_SLOTS; i++) tg__bigbuf_free(p[i], cap[i]);
  cr_expect(!mapped(p[0]), "the first freed was dropped");
  for (int i = 1; i <= TG__BIGBUF_SLOTS; i++) cr_expect(mapped(p[i]), "slot %d kept", i);
  tg__bigbuf_trim();
  for (int i = 1; i <= TG__BIGBUF_SLOTS; i++) cr_expect(!mapped(p[i]), "%d trimmed", i);
}

Test(bigbuf, idle_buffers_are_unmapped_by_a_sweep) {
  size_t cap;
  void *p = take(4 * MIB, &cap);
  tg__bigbuf_free(p, cap);
  tg__bigbuf_sweep();
  cr_expect(mapped(p), "not idle long enough yet");
  tgt_sleep_ms((long)(TG__BIGBUF_IDLE * 1000) + 100);
  tg__bigbuf_sweep();
  cr_expect(!mapped(p), "idle for longer than TG__BIGBUF_IDLE");
}

Test(bigbuf, a_forked_child_starts_with_none) {
  size_t cap;
  void *p = take(4 * MIB, &cap);
  tg__bigbuf_free(p, cap);
  pid_t pid = fork();
  if (pid == 0) _exit(mapped(p) ? 1 : 0);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child still had the buffer");
  cr_expect(mapped(p), "the parent keeps it");
}
