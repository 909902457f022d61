/* placeholder: being written */
typedef int tg__placeholder_json_write;
