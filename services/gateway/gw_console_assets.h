/* The console's static files, embedded at build time (console/embed.py). */
#ifndef GW_CONSOLE_ASSETS_H
#define GW_CONSOLE_ASSETS_H

#include <stddef.h>

typedef struct gw_console_asset {
	const char *path;                /* "/index.html" */
	const char *type;                /* its Content-Type */
	const unsigned char *data;
	size_t len;
} gw_console_asset;

extern const gw_console_asset gw_console_assets[];
extern const unsigned gw_console_nassets;

#endif
