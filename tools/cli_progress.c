/* A progress bar on a terminal, plain lines elsewhere (cli_progress.h). */
#include <string.h>
#include <unistd.h>

#include "cli_progress.h"
#include "cm_time.h"

void cli_progress_init(cli_progress *p, FILE *out, uint64_t total, uint64_t start_rows)
{
	memset(p, 0, sizeof(*p));
	p->out = out;
	p->tty = isatty(fileno(out));
	p->total = total;
	p->start_rows = start_rows;
	p->t0_us = cm_now_us();
	p->width = 30;
}

static void clock_text(char *out, size_t len, double s)
{
	if (s < 0 || s > 360000)
		snprintf(out, len, "--:--");
	else if (s >= 3600)
		snprintf(out, len, "%d:%02d:%02d", (int)s / 3600, ((int)s / 60) % 60, (int)s % 60);
	else
		snprintf(out, len, "%d:%02d", (int)s / 60, (int)s % 60);
}

void cli_progress_update(cli_progress *p, uint64_t rows, int final)
{
	uint64_t now = cm_now_us();
	if (!final && now - p->last_us < (p->tty ? 100000u : CLI_PROGRESS_LINE_S * 1000000u))
		return;
	p->last_us = now;
	double el = (double)(now - p->t0_us) / 1e6;
	double rate = el > 0 ? (double)(rows - p->start_rows) / el : 0;
	char eta[32], ela[32];
	clock_text(ela, sizeof(ela), el);
	if (p->total && rate > 0)
		clock_text(eta, sizeof(eta), (double)(p->total > rows ? p->total - rows : 0) / rate);
	else
		snprintf(eta, sizeof(eta), "--:--");
	double frac = p->total ? (double)rows / (double)p->total : 0;
	if (frac > 1)
		frac = 1;
	if (p->tty) {
		char bar[128];
		int fill = (int)(frac * p->width);
		for (int i = 0; i < p->width; i++)
			bar[i] = i < fill ? '#' : (i == fill && !final ? '>' : '.');
		bar[p->width] = '\0';
		if (p->total)
			fprintf(p->out, "\r[%s] %3.0f%% %llu/%llu rows  %.0f rows/s  ETA %s  ", bar, frac * 100,
				(unsigned long long)rows, (unsigned long long)p->total, rate, final ? "0:00" : eta);
		else
			fprintf(p->out, "\r%llu rows  %.0f rows/s  %s elapsed  ", (unsigned long long)rows, rate, ela);
		if (final)
			fputc('\n', p->out);
	} else if (final && p->shown && p->shown_rows == rows) {
		return; /* the last line said it already */
	} else if (p->total) {
		fprintf(p->out, "progress: %llu/%llu rows (%.0f%%), %.0f rows/s, elapsed %s, eta %s\n",
			(unsigned long long)rows, (unsigned long long)p->total, frac * 100, rate, ela, final ? "0:00" : eta);
	} else {
		fprintf(p->out, "progress: %llu rows, %.0f rows/s, elapsed %s\n", (unsigned long long)rows, rate, ela);
	}
	p->shown = 1;
	p->shown_rows = rows;
	fflush(p->out);
}
