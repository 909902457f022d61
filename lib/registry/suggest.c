/* lib/registry/suggest.c: "did you mean" for unknown function names: the
 * registered name at the smallest edit (Levenshtein) distance. */
#include <string.h>

#include "registry_internal.h"

/* Edit distance between a and b (lengths <= TG__NAME_MAX + 1 are enough
 * for names; longer inputs are compared on their first bytes), using one
 * row of the dynamic-programming table. */
static size_t distance(const char *a, size_t la, const char *b, size_t lb) {
  enum { MAXL = TG__NAME_MAX + 1 };
  size_t row[MAXL + 1];
  if (la > MAXL) la = MAXL;
  if (lb > MAXL) lb = MAXL;
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

const char *tg_registry_suggest(const tg_registry *reg, const char *name) {
  size_t n = tg_registry_count(reg);
  if (n == 0) return NULL;
  if (!name) name = "";
  size_t ln = strlen(name), best = SIZE_MAX;
  const char *pick = NULL;
  for (size_t i = 0; i < n; i++) {
    const tg_func *f = tg_registry_at(reg, i);
    size_t d = distance(name, ln, f->name, f->name_len);
    if (d < best) { /* ties: the earliest registered wins */
      best = d;
      pick = f->name;
    }
  }
  return pick;
}
