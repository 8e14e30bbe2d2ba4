/* Progress of a long command: on a terminal a bar redrawn in place with the
 * rate and the time left; otherwise a plain line at most every few seconds
 * and at the end. */
#ifndef CLI_PROGRESS_H
#define CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#define CLI_PROGRESS_LINE_S 2 /* seconds between plain lines */

typedef struct cli_progress {
	FILE *out;
	int tty;
	uint64_t total;          /* rows expected in all, 0 unknown */
	uint64_t start_rows;     /* rows done before this run (a resume) */
	uint64_t t0_us, last_us;
	int width;
	uint64_t shown_rows;      /* rows of the last plain line */
	int shown;
} cli_progress;

void cli_progress_init(cli_progress *p, FILE *out, uint64_t total, uint64_t start_rows);
/* rows: done so far in all; final: the last call. */
void cli_progress_update(cli_progress *p, uint64_t rows, int final);

#endif
