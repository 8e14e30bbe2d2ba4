/* The fragment's Scroll (ix_fragment_scroll), in process: paging through a
 * log of inserts, updates and deletes returns every live record exactly
 * once, in ascending id order, with its current version and metadata; a
 * filter returns exactly the matching live records, also when the scan
 * bound leaves pages short or empty; each page's log size and root are the
 * log's at that size while a writer appends concurrently; bad limits are
 * refused naming the field. */
#include "tap.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "ix_fragment.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIM 4
#define ROWS 1000
#define ERR 512

static char tmpdir[] = "/tmp/muri-test-scroll-XXXXXX";

static ix_field gfield[3] = {
	{.key = "g", .key_len = 1, .v = {.type = IX_V_INT, .u.i = 0}},
	{.key = "g", .key_len = 1, .v = {.type = IX_V_INT, .u.i = 1}},
	{.key = "g", .key_len = 1, .v = {.type = IX_V_INT, .u.i = 2}},
};

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A random-looking UUIDv4 per row (ids do not follow row order). */
static void make_id(uint32_t row, uint8_t id[IX_ID_BYTES])
{
	uint64_t s = row * UINT64_C(104729) + 3, a = splitmix(&s), b = splitmix(&s);
	memcpy(id, &a, 8);
	memcpy(id + 8, &b, 8);
	id[6] = (uint8_t)(0x40 | (id[6] & 0x0f));
	id[8] = (uint8_t)(0x80 | (id[8] & 0x3f));
}

static float vecs[ROWS][DIM];
static uint64_t version[ROWS]; /* 0: deleted */
static int gval[ROWS];
static uint8_t ids[ROWS][IX_ID_BYTES];

static int row_of(const uint8_t *id)
{
	for (int i = 0; i < ROWS; i++)
		if (memcmp(ids[i], id, IX_ID_BYTES) == 0)
			return i;
	return -1;
}

static ix_record rec(uint64_t seq, uint32_t row, int op, uint64_t ver, int g)
{
	ix_record r = {.seq = seq, .epoch = 1, .op = op, .version = ver};
	memcpy(r.id, ids[row], IX_ID_BYTES);
	if (op != IX_OP_DELETE) {
		r.dim = DIM;
		r.vec = vecs[row];
		r.nfields = 1;
		r.fields = &gfield[g];
	}
	return r;
}

static ix_fragment *frag;

static void build(void)
{
	char dir[128], err[ERR] = "";
	snprintf(dir, sizeof(dir), "%s/f", tmpdir);
	ix_spec spec = {.dim = DIM, .metric = IX_L2, .kind = IX_FLAT};
	TAP_EQ(ix_fragment_open(dir, &spec, NULL, &frag, err, sizeof(err)), CM_OK);
	static ix_record recs[ROWS];
	uint64_t seq = 0;
	for (uint32_t i = 0; i < ROWS; i++) {
		make_id(i, ids[i]);
		for (int k = 0; k < DIM; k++)
			vecs[i][k] = (float)(i * DIM + k);
		version[i] = 1;
		gval[i] = (int)(i % 3);
		recs[i] = rec(seq++, i, IX_OP_INSERT, 1, gval[i]);
	}
	TAP_EQ(ix_fragment_append(frag, recs, ROWS, err, sizeof(err)), CM_OK);
	/* rows 0..99 updated (their g moves on), rows 100..249 deleted */
	uint32_t n = 0;
	for (uint32_t i = 0; i < 100; i++) {
		gval[i] = (gval[i] + 1) % 3;
		version[i] = 2;
		recs[n++] = rec(seq++, i, IX_OP_UPDATE, 2, gval[i]);
	}
	for (uint32_t i = 100; i < 250; i++) {
		version[i] = 0;
		recs[n++] = rec(seq++, i, IX_OP_DELETE, 3, 0);
	}
	TAP_EQ(ix_fragment_append(frag, recs, n, err, sizeof(err)), CM_OK);
}

/* Pages through everything with q's filter and bounds; checks order,
 * uniqueness, versions, metadata and each page's root; returns the rows
 * seen (counts in seen[]) or -1. */
static int scroll_all(ix_scroll_query q, int *seen, size_t *pages)
{
	char err[ERR];
	cm_arena a;
	cm_arena_init(&a, 0);
	uint8_t after[IX_ID_BYTES], prev[IX_ID_BYTES];
	int has_prev = 0, total = 0, ok = 1;
	memset(seen, 0, ROWS * sizeof(*seen));
	*pages = 0;
	for (int guard = 0; guard < 100000; guard++) {
		ix_scroll_result r;
		cm_arena_reset(&a);
		if (ix_fragment_scroll(frag, &q, &a, &r, err, sizeof(err)) != CM_OK) {
			printf("# scroll: %s\n", err);
			ok = 0;
			break;
		}
		(*pages)++;
		uint8_t root[CM_MERKLE_HASH_BYTES];
		if (ix_fragment_root(frag, r.log_size, root) != CM_OK || memcmp(root, r.root, sizeof(root)) != 0) {
			printf("# page root is not the log's root at %llu\n", (unsigned long long)r.log_size);
			ok = 0;
		}
		for (size_t i = 0; i < r.n; i++) {
			int row = row_of(r.hits[i].id);
			if (row < 0 || (has_prev && memcmp(r.hits[i].id, prev, IX_ID_BYTES) <= 0)) {
				printf("# hit %zu: unknown or out of order\n", i);
				ok = 0;
				continue;
			}
			memcpy(prev, r.hits[i].id, IX_ID_BYTES);
			has_prev = 1;
			seen[row]++;
			total++;
			if (r.hits[i].version != version[row] || r.hits[i].nfields != 1 ||
			    r.hits[i].fields[0].v.u.i != gval[row] || (q.include_vectors && (r.hits[i].dim != DIM ||
			    memcmp(r.hits[i].vec, vecs[row], sizeof(vecs[row])) != 0)) ||
			    (!q.include_vectors && r.hits[i].vec)) {
				printf("# row %d: version, metadata or vector differ\n", row);
				ok = 0;
			}
		}
		if (r.done)
			break;
		if (!r.has_last || (q.after && memcmp(r.last, q.after, IX_ID_BYTES) <= 0)) {
			printf("# an unfinished page without progress\n");
			ok = 0;
			break;
		}
		memcpy(after, r.last, IX_ID_BYTES);
		q.after = after;
	}
	cm_arena_free(&a);
	return ok ? total : -1;
}

static void test_pages_cover_every_live_record_once(void)
{
	int seen[ROWS];
	size_t pages;
	ix_scroll_query q = {.limit = 37, .scan_max = 100000, .include_vectors = 1};
	int n = scroll_all(q, seen, &pages);
	TAP_EQ(n, ROWS - 150);
	int bad = 0;
	for (int i = 0; i < ROWS; i++)
		bad += seen[i] != (version[i] ? 1 : 0);
	TAP_EQ(bad, 0);
	TAP_EQ(pages, (ROWS - 150 + 36) / 37);
	printf("# %d live records in %zu pages of 37\n", n, pages);
	/* without vectors: none carried */
	q.include_vectors = 0;
	q.limit = 500;
	TAP_EQ(scroll_all(q, seen, &pages), ROWS - 150);
}

static void test_filter_and_scan_bound(void)
{
	ix_cond c = {.key = "g", .has_eq = 1, .eq = {.type = IX_V_INT, .u.i = 1}};
	ix_filter flt = {.n = 1, .conds = &c};
	int want = 0;
	for (int i = 0; i < ROWS; i++)
		want += version[i] && gval[i] == 1;
	int seen[ROWS];
	size_t pages;
	/* a scan bound of 10 records: pages stop early, some hold nothing */
	ix_scroll_query q = {.limit = 50, .scan_max = 10, .filter = &flt};
	TAP_EQ(scroll_all(q, seen, &pages), want);
	int bad = 0;
	for (int i = 0; i < ROWS; i++)
		bad += seen[i] != (version[i] && gval[i] == 1);
	TAP_EQ(bad, 0);
	TAP_CHECK(pages >= (size_t)(ROWS - 150) / 10);
	q.scan_max = 100000;
	TAP_EQ(scroll_all(q, seen, &pages), want);
	TAP_EQ(pages, (size_t)(want + 49) / 50);
	printf("# filter g == 1: %d records\n", want);
}

static void test_bad_limits(void)
{
	char err[ERR] = "";
	cm_arena a;
	cm_arena_init(&a, 0);
	ix_scroll_result r;
	ix_scroll_query q = {.limit = 0, .scan_max = 10};
	TAP_EQ(ix_fragment_scroll(frag, &q, &a, &r, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strncmp(err, "limit: 0", 8) == 0);
	q.limit = 10001;
	TAP_EQ(ix_fragment_scroll(frag, &q, &a, &r, err, sizeof(err)), CM_ERR_INVALID);
	q.limit = 5;
	q.scan_max = 0;
	TAP_EQ(ix_fragment_scroll(frag, &q, &a, &r, err, sizeof(err)), CM_ERR_INVALID);
	TAP_CHECK(strncmp(err, "scan_max", 8) == 0);
	cm_arena_free(&a);
}

/* A writer appends fresh rows' updates while pages are read: every page's
 * root is the log's root at the size the page reports. */
static volatile int writer_stop, writer_done;

static void *writer(void *arg)
{
	uint64_t seq = *(uint64_t *)arg;
	char err[ERR];
	for (uint64_t v = 10; !writer_stop && v < 150; v++) {
		ix_record r = rec(seq, (uint32_t)(v % 100), IX_OP_UPDATE, v, gval[v % 100]);
		if (ix_fragment_append(frag, &r, 1, err, sizeof(err)) != CM_OK)
			break;
		seq++;
	}
	writer_done = 1;
	return NULL;
}

static void test_snapshot_while_writing(void)
{
	uint64_t seq = ix_fragment_size(frag);
	pthread_t th;
	writer_stop = writer_done = 0;
	TAP_EQ(pthread_create(&th, NULL, writer, &seq), 0);
	char err[ERR];
	cm_arena a;
	cm_arena_init(&a, 0);
	int bad = 0, pages = 0;
	uint64_t first = 0, last = 0;
	/* read pages until the writer is done (at least 200, at most 100000) */
	for (int round = 0; round < 100000 && (round < 200 || !writer_done); round++) {
		ix_scroll_query q = {.limit = 100, .scan_max = 100000};
		ix_scroll_result r;
		cm_arena_reset(&a);
		if (ix_fragment_scroll(frag, &q, &a, &r, err, sizeof(err)) != CM_OK) {
			printf("# %s\n", err);
			bad++;
			continue;
		}
		uint8_t root[CM_MERKLE_HASH_BYTES];
		bad += ix_fragment_root(frag, r.log_size, root) != CM_OK || memcmp(root, r.root, sizeof(root)) != 0;
		if (!pages++)
			first = r.log_size;
		last = r.log_size;
	}
	writer_stop = 1;
	pthread_join(th, NULL);
	cm_arena_free(&a);
	TAP_EQ(bad, 0);
	printf("# %d pages read during appends, log sizes %llu..%llu\n", pages, (unsigned long long)first,
	       (unsigned long long)last);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (cm_crypto_init() != CM_OK || !mkdtemp(tmpdir))
		return 1;
	TAP_RUN(build);
	TAP_RUN(test_pages_cover_every_live_record_once);
	TAP_RUN(test_filter_and_scan_bound);
	TAP_RUN(test_bad_limits);
	TAP_RUN(test_snapshot_while_writing);
	ix_fragment_close(frag);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	return tap_done();
}
