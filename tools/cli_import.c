#include "cli.h"
int cli_cmd_import(int argc, char **argv) { (void)argc; (void)argv; return 1; }
int cli_cmd_bench(int argc, char **argv) { (void)argc; (void)argv; return 1; }
