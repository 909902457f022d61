// tests/install/user.cpp: a C++ program using the installed library
// through tgraph.h: builds a value, writes it as JSON, reads it back.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <tgraph.h>

int main() {
  tg_value *map = tg_map_new(2);
  if (map == NULL) return 1;
  if (tg_map_put_c(map, "lang", tg_str_c("C++")) != TG_OK ||
      tg_map_put_c(map, "n", tg_list_of(2, tg_int(1), tg_float(2.5))) != TG_OK)
    return 1;
  char *json = NULL;
  tg_error err;
  tg_error_clear(&err);
  if (tg_value_to_json(map, 0, &json, NULL, &err) != TG_OK) return 1;
  tg_value *back = NULL;
  if (tg_value_from_json(json, std::strlen(json), &back, &err) != TG_OK)
    return 1;
  std::printf("%s\n%s\n", json, tg_type_name(tg_value_type(back)));
  std::free(json);
  tg_value_unref(back);
  tg_value_unref(map);
  return 0;
}
