/* lib/report/page.c: the report page, the template (page.html, embedded
 * at build time) with the run's data inlined or a URL to fetch it from
 * (tg__report_page), and writing it to a file atomically
 * (tg_report_write). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "report/report_internal.h"

/* Where the template takes the data and the page's settings: each inside
 * a <script type="application/json"> element. */
static const char DATA_MARK[] = "{{TG_DATA}}";
static const char CONFIG_MARK[] = "{{TG_CONFIG}}";

/* A growing output buffer, malloc'd as the callers free it with free(). */
typedef struct pbuf {
  char *p;
  size_t len, cap;
  bool oom;
} pbuf;

static void put(pbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->cap - b->len < n + 1) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (q == NULL) {
      b->oom = true;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

/* JSON text inside a <script> element: "</script>" or "<!--" in a string
 * would end or change the element, so every '<' (only ever inside a JSON
 * string) is written as the escape \u003c, which reads back the same. */
static void put_script_json(pbuf *b, const char *json, size_t len) {
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    if (json[i] != '<') continue;
    put(b, json + run, i - run);
    put(b, "\\u003c", 6);
    run = i + 1;
  }
  put(b, json + run, len - run);
}

/* The settings object: {"live": B, "data_url": S | null}. */
static int config_json(bool live, const char *data_url, char **out, size_t *len) {
  tg_value *m = tg_map_new(2);
  if (m == NULL) return TG_ENOMEM;
  tg_value *url = live ? tg_str_c(data_url) : tg_null();
  if (url == NULL) { /* not UTF-8 (or out of memory) */
    tg_value_unref(m);
    return TG_EINVAL;
  }
  int rc = tg_map_put_c(m, "live", tg_bool(live));
  if (rc == TG_OK) rc = tg_map_put_c(m, "data_url", url);
  else tg_value_unref(url);
  if (rc == TG_OK) rc = tg_value_to_json(m, 0, out, len, NULL);
  tg_value_unref(m);
  return rc;
}

/* Copy template text [from, to) into b, replacing each mark. */
int tg__report_page(tg_report *r, bool live, const char *data_url, char **out,
                    size_t *len) {
  if (r == NULL || out == NULL || (live && data_url == NULL)) return TG_EINVAL;
  *out = NULL;
  char *data = NULL, *config = NULL;
  size_t data_len = 4, config_len = 0;
  int rc = live ? TG_OK : tg__report_json(r, &data, &data_len);
  if (rc == TG_OK) rc = config_json(live, data_url, &config, &config_len);
  if (rc != TG_OK) {
    free(data);
    return rc;
  }
  const char *t = (const char *)tg__report_page_html, *end = t + tg__report_page_html_size;
  pbuf b = {NULL, 0, 0, false};
  while (t < end) {
    const char *d = memmem(t, (size_t)(end - t), DATA_MARK, sizeof DATA_MARK - 1);
    const char *c = memmem(t, (size_t)(end - t), CONFIG_MARK, sizeof CONFIG_MARK - 1);
    const char *next = d && (!c || d < c) ? d : c;
    if (next == NULL) {
      put(&b, t, (size_t)(end - t));
      break;
    }
    put(&b, t, (size_t)(next - t));
    if (next == d) {
      if (live) put(&b, "null", 4);
      else put_script_json(&b, data, data_len);
      t = d + sizeof DATA_MARK - 1;
    } else {
      put_script_json(&b, config, config_len);
      t = c + sizeof CONFIG_MARK - 1;
    }
  }
  free(data);
  free(config);
  if (b.oom || b.p == NULL) {
    free(b.p);
    return TG_ENOMEM;
  }
  *out = b.p;
  if (len) *len = b.len;
  return TG_OK;
}

/* Write all of buf to fd. */

int tg_report_write(tg_report *r, const char *path, tg_error *err) {
  if (r == NULL || path == NULL || *path == '\0')
    return tg__error_set(err, TG_EINVAL, "tg_report_write: %s",
                         r == NULL ? "report is NULL" : "no file name");
  char *page = NULL;
  size_t len = 0;
  int rc = tg__report_page(r, false, NULL, &page, &len);
  if (rc != TG_OK)
    return tg__error_set(err, rc, "cannot make the report page: %s", tg_strerror(rc));
  const char *what;
  rc = tg__write_file_atomic(path, page, len, TG__WRITE_SYNC, &what);
  free(page);
  if (rc != TG_OK)
    return tg__error_set(err, rc, "cannot %s the report '%s': %s", what, path,
                         tg_strerror(rc));
  return TG_OK;
}
