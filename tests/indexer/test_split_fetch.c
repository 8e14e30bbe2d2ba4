/* The fetch core of a split parent's frozen log (services/indexer/
 * ix_split_fetch.h) on hand-made answers: the Merkle frontier's root equals
 * common/cm_merkle's for every size and page, the cell's records are staged
 * in log order, and each way a replica fails (an error past its retries, an
 * empty page, a short log, a record out of place, too many records, a
 * prefix with another root) drops what was staged and moves to the next
 * replica; every replica failed is IXF_WAIT until a new round. Seeded
 * schedules with lying replicas, kills and partitions are in
 * test_split_sim.c. */
#include "tap.h"
#include "cm_cell.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "ix_split_fetch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_MAX 600
#define DATA 24 /* id (16 bytes) + seq */

static uint8_t log_data[LOG_MAX][DATA];
static uint8_t fake[DATA];

static void make_log(void)
{
	for (uint64_t s = 0; s < LOG_MAX; s++) {
		uint8_t h[CM_HASH_BYTES];
		cm_hash(h, CM_DOM_LEAF, &s, sizeof(s));
		memcpy(log_data[s], h, 16);
		memcpy(log_data[s] + 16, &s, 8);
	}
}

static void root_of(uint64_t n, uint8_t out[CM_MERKLE_HASH_BYTES])
{
	cm_merkle *m = NULL;
	cm_merkle_new(&m, &cm_merkle_blake2b);
	for (uint64_t s = 0; s < n; s++)
		cm_merkle_append(m, log_data[s], DATA);
	cm_merkle_root(m, n, out);
	cm_merkle_free(m);
}

struct stage {
	uint64_t n, resets;
	uint8_t ids[LOG_MAX][16];
	int fail;
};

static int st_reset(void *arg)
{
	struct stage *s = arg;
	s->n = 0;
	s->resets++;
	return CM_OK;
}

static int st_append(void *arg, const ixf_entry *e)
{
	struct stage *s = arg;
	if (s->fail || s->n >= LOG_MAX)
		return CM_ERR_IO;
	memcpy(s->ids[s->n++], e->id, 16);
	return CM_OK;
}

static cm_cell half(int b)
{
	cm_cell c[2], r = cm_cell_root(0);
	cm_cell_children(&r, c);
	return c[b];
}

static void init(ixf *x, struct stage *st, uint64_t size, uint32_t npeers, uint32_t page, uint32_t retries)
{
	ixf_opts o;
	memset(&o, 0, sizeof(o));
	o.size = size;
	root_of(size, o.root);
	o.cell = half(1);
	o.npeers = npeers;
	o.page = page;
	o.retries = retries;
	ixf_io io = {st, st_reset, st_append};
	memset(st, 0, sizeof(*st));
	TAP_EQ(ixf_init(x, &o, &io), CM_OK);
}

/* An honest answer to req from a log of log_size records. */
static int answer(ixf *x, const ixf_req *q, uint64_t log_size, ixf_entry *e)
{
	size_t n = 0;
	for (uint64_t s = q->from; s < log_size && n < q->max; s++, n++) {
		e[n].seq = s;
		e[n].id = log_data[s];
		e[n].data = log_data[s];
		e[n].len = DATA;
	}
	return ixf_on_page(x, q->peer, e, n, log_size);
}

/* The cell's records of the first size, in order, are what was staged. */
static int staged_right(const struct stage *st, uint64_t size)
{
	cm_cell c = half(1);
	uint64_t k = 0;
	for (uint64_t s = 0; s < size; s++) {
		if (!cm_cell_contains(&c, log_data[s], 1))
			continue;
		if (k >= st->n || memcmp(st->ids[k], log_data[s], 16) != 0)
			return 0;
		k++;
	}
	return k == st->n;
}

static void test_root_and_stage(void)
{
	static const uint64_t sizes[] = {0, 1, 2, 3, 5, 8, 13, 64, 100, 257, 600};
	static const uint32_t pages[] = {1, 3, 7, 256};
	static ixf_entry e[256];
	int ok = 1;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++)
		for (size_t j = 0; j < sizeof(pages) / sizeof(*pages); j++) {
			ixf x;
			struct stage st;
			ixf_req q;
			init(&x, &st, sizes[i], 1, pages[j], 0);
			int step, calls = 0;
			while ((step = ixf_next(&x, &q)) == IXF_FETCH && calls++ < LOG_MAX + 1)
				ok &= answer(&x, &q, LOG_MAX, e) == IXF_OK; /* a replica's log may be longer */
			ok &= step == IXF_DONE && staged_right(&st, sizes[i]) && ixf_staged(&x) == st.n;
			ok &= x.pages == (sizes[i] + pages[j] - 1) / pages[j];
			if (!ok) {
				printf("# size %llu page %u: step %d, %llu staged\n", (unsigned long long)sizes[i], pages[j],
				       step, (unsigned long long)st.n);
				TAP_CHECK(0);
				return;
			}
		}
	TAP_CHECK(ok);
}

static void test_faults_move_on(void)
{
	static ixf_entry e[16];
	ixf x;
	struct stage st;
	ixf_req q;
	const uint64_t size = 40;
	init(&x, &st, size, 4, 8, 0);
	x.cur = 0;
	/* replica 0: a log shorter than the frozen size */
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	TAP_EQ(q.peer, 0u);
	TAP_EQ(answer(&x, &q, size - 1, e), IXF_SHORT);
	/* replica 1: a good page, then a record out of place; its records are dropped */
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	TAP_EQ(q.peer, 1u);
	TAP_EQ(q.from, 0u);
	TAP_EQ(answer(&x, &q, size, e), IXF_OK);
	TAP_CHECK(st.n > 0);
	uint64_t resets = st.resets;
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	TAP_EQ(q.from, 8u);
	size_t n = 0;
	for (uint64_t s = q.from; n < q.max; s++, n++) {
		e[n].seq = n == 3 ? s + 1 : s;
		e[n].id = e[n].data = log_data[n == 3 ? s + 1 : s];
		e[n].len = DATA;
	}
	TAP_EQ(ixf_on_page(&x, q.peer, e, n, size), IXF_BAD);
	TAP_EQ(st.resets, resets + 1);
	TAP_EQ(st.n, 0u);
	/* replica 2: a fabricated record, caught by the root at the end */
	int step;
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	TAP_EQ(q.peer, 2u);
	TAP_EQ(q.from, 0u);
	memcpy(fake, log_data[17], DATA);
	fake[0] ^= 1;
	while ((step = ixf_next(&x, &q)) == IXF_FETCH && q.peer == 2) {
		n = 0;
		for (uint64_t s = q.from; s < size && n < q.max; s++, n++) {
			e[n].seq = s;
			e[n].id = e[n].data = s == 17 ? fake : log_data[s];
			e[n].len = DATA;
		}
		TAP_EQ(ixf_on_page(&x, q.peer, e, n, size), IXF_OK);
	}
	TAP_EQ(x.faults[IXF_ROOT], 1u);
	/* replica 3: an empty page; then every one failed this round */
	TAP_EQ(step, IXF_FETCH);
	TAP_EQ(q.peer, 3u);
	TAP_EQ(q.from, 0u);
	TAP_EQ(ixf_on_page(&x, q.peer, e, 0, size), IXF_SHORT);
	TAP_EQ(ixf_next(&x, &q), IXF_WAIT);
	TAP_EQ(ixf_next(&x, &q), IXF_WAIT);
	/* a new round: honest answers now */
	ixf_round(&x);
	while ((step = ixf_next(&x, &q)) == IXF_FETCH)
		TAP_EQ(answer(&x, &q, size, e), IXF_OK);
	TAP_EQ(step, IXF_DONE);
	TAP_CHECK(staged_right(&st, size));
	TAP_EQ(x.faults[IXF_SHORT], 2u);
	TAP_EQ(x.faults[IXF_BAD], 1u);
}

static void test_retries_and_stale(void)
{
	static ixf_entry e[16];
	ixf x;
	struct stage st;
	ixf_req q;
	init(&x, &st, 20, 2, 5, 2);
	x.cur = 0;
	/* two errors in a row are retried (the same page), a page in between resets the count */
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	ixf_on_error(&x, q.peer);
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	ixf_on_error(&x, q.peer);
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	TAP_EQ(q.peer, 0u);
	TAP_EQ(q.from, 0u);
	TAP_EQ(answer(&x, &q, 20, e), IXF_OK);
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	/* an answer from a replica not asked is ignored */
	ixf_req other = {1, 5, 5};
	TAP_EQ(answer(&x, &other, 20, e), IXF_OK);
	TAP_EQ(x.next, 5u);
	ixf_on_error(&x, 1);
	TAP_EQ(x.faults[IXF_UNREACHABLE], 0u);
	/* three in a row: the next replica, from the start */
	ixf_on_error(&x, q.peer);
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	ixf_on_error(&x, q.peer);
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	ixf_on_error(&x, q.peer);
	TAP_EQ(x.faults[IXF_UNREACHABLE], 1u);
	TAP_EQ(ixf_next(&x, &q), IXF_FETCH);
	TAP_EQ(q.peer, 1u);
	TAP_EQ(q.from, 0u);
	/* more records than asked */
	ixf_req big = q;
	big.max = q.max + 1;
	size_t n = 0;
	for (uint64_t s = 0; s < big.max; s++, n++) {
		e[n].seq = s;
		e[n].id = e[n].data = log_data[s];
		e[n].len = DATA;
	}
	TAP_EQ(ixf_on_page(&x, q.peer, e, n, 20), IXF_BAD);
	/* this node's stage failing is no replica's lie, but the fetch starts over too */
	ixf_round(&x);
	st.fail = 1;
	int step, faults = 0;
	while ((step = ixf_next(&x, &q)) == IXF_FETCH && faults++ < 4)
		answer(&x, &q, 20, e);
	TAP_CHECK(x.faults[IXF_STAGE] >= 1);
	TAP_EQ(step, IXF_WAIT);
}

static void test_invalid(void)
{
	ixf x;
	ixf_opts o;
	struct stage st;
	ixf_io io = {&st, st_reset, st_append};
	memset(&o, 0, sizeof(o));
	TAP_EQ(ixf_init(&x, &o, &io), CM_ERR_INVALID); /* no replica */
	o.npeers = IXF_MAX_PEERS + 1;
	TAP_EQ(ixf_init(&x, &o, &io), CM_ERR_INVALID);
	o.npeers = 1;
	o.page = 10001;
	TAP_EQ(ixf_init(&x, &o, &io), CM_ERR_INVALID);
	o.page = 0;
	TAP_EQ(ixf_init(&x, &o, &io), CM_OK);
	TAP_EQ(x.o.page, (uint32_t)IXF_PAGE_DEFAULT);
	TAP_STREQ(ixf_fault_name(IXF_ROOT), "root");
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	make_log();
	TAP_RUN(test_root_and_stage);
	TAP_RUN(test_faults_move_on);
	TAP_RUN(test_retries_and_stale);
	TAP_RUN(test_invalid);
	return tap_done();
}
