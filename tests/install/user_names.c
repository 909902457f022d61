/* tests/install/user_names.c: names a program may well define for itself
 * and that read like a library's internals (the first two were exported
 * by libtgraph once). Linked beside examples/graph_basic.c against the
 * installed libtgraph.so and libtgraph.a: neither may define them. */
#include <stddef.h>

int tcp_wake(void);
int tcp_dispatch(void);
void *bigbuf_get(size_t n);
int cache_open(const char *dir);
unsigned long value_hash(const void *v);
int sched_step(void);
int worker_loop(void);
int registry_find(const char *name);
int json_parse(const char *text);

int backend_threads = 1;
int tcp_wake(void) { return 0; }
int tcp_dispatch(void) { return 0; }
void *bigbuf_get(size_t n) { (void)n; return NULL; }
int cache_open(const char *dir) { (void)dir; return 0; }
unsigned long value_hash(const void *v) { (void)v; return 0; }
int sched_step(void) { return 0; }
int worker_loop(void) { return 0; }
int registry_find(const char *name) { (void)name; return 0; }
int json_parse(const char *text) { (void)text; return 0; }
