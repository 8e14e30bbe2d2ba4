/* The sizes a primary names for roots (ix_repl_root_size) under steady
 * writes: with root_hold_ms a named size stays named until the ledger
 * commits it (the floor reaches it) or the hold passes, so that replicas
 * looking at it at different moments sign the same size; without a hold
 * every multiple of root_every is named as soon as the log reaches it. One
 * replica (its own primary), an in-memory log, a clock the test moves. */
#include "tap.h"
#include "cm_err.h"
#include "cm_merkle.h"
#include "ix_repl.h"

#include <string.h>

#define LOG_MAX 64

struct disk {
	uint64_t size, now;
	cm_merkle *mk;
	uint8_t leaf[LOG_MAX][CM_HASH_BYTES];
	uint64_t epoch[LOG_MAX];
};

static uint64_t io_log_size(void *ctx)
{
	return ((struct disk *)ctx)->size;
}

static int io_log_entry(void *ctx, uint64_t seq, ix_repl_entry *out)
{
	struct disk *d = ctx;
	if (seq >= d->size)
		return CM_ERR_RANGE;
	memset(out, 0, sizeof(*out));
	out->seq = seq;
	out->epoch = d->epoch[seq];
	memcpy(out->leaf, d->leaf[seq], CM_HASH_BYTES);
	return 0;
}

static int io_log_read(void *ctx, uint64_t from, uint32_t max, ix_repl_entry *out, uint32_t *n)
{
	struct disk *d = ctx;
	uint32_t k = 0;
	for (uint64_t s = from; s < d->size && k < max; s++, k++)
		io_log_entry(ctx, s, &out[k]);
	*n = k;
	return 0;
}

static int io_log_root(void *ctx, uint64_t size, uint8_t out[CM_HASH_BYTES])
{
	struct disk *d = ctx;
	return size > d->size ? CM_ERR_RANGE : cm_merkle_root(d->mk, size, out);
}

static int io_log_append(void *ctx, const ix_repl_entry *e, uint32_t n)
{
	struct disk *d = ctx;
	for (uint32_t i = 0; i < n; i++) {
		if (e[i].seq != d->size || d->size >= LOG_MAX)
			return CM_ERR_RANGE;
		memcpy(d->leaf[d->size], e[i].leaf, CM_HASH_BYTES);
		d->epoch[d->size++] = e[i].epoch;
		cm_merkle_append_hash(d->mk, e[i].leaf);
	}
	return 0;
}

static int io_log_truncate(void *ctx, uint64_t size)
{
	struct disk *d = ctx;
	d->size = size;
	return cm_merkle_truncate(d->mk, size);
}

static int io_persist(void *ctx, const ix_repl_persist *st)
{
	(void)ctx, (void)st;
	return 0;
}

static void io_send(void *ctx, const uint8_t to[CM_PK_BYTES], const ix_repl_msg *m)
{
	(void)ctx, (void)to, (void)m;
}

static void io_ledger_submit(void *ctx, const ix_repl_failover *f)
{
	(void)ctx, (void)f;
}

static void io_write_done(void *ctx, uint64_t token, int rc, uint64_t first, uint64_t end, int level)
{
	(void)ctx, (void)token, (void)rc, (void)first, (void)end, (void)level;
}

static void io_sign(void *ctx, const uint8_t d[CM_HASH_BYTES], uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx;
	memset(sig, 0, CM_SIG_BYTES);
	memcpy(sig, d, CM_HASH_BYTES);
}

static int io_verify(void *ctx, const uint8_t pk[CM_PK_BYTES], const uint8_t d[CM_HASH_BYTES],
		     const uint8_t sig[CM_SIG_BYTES])
{
	(void)ctx, (void)pk;
	return memcmp(sig, d, CM_HASH_BYTES) ? CM_ERR_VERIFY : CM_OK;
}

static uint64_t io_now(void *ctx)
{
	return ((struct disk *)ctx)->now;
}

/* A primary of one replica in epoch 1 on disk d. */
static ix_repl *primary(struct disk *d, uint32_t hold_ms)
{
	ix_repl_opts o;
	memset(&o, 0, sizeof(o));
	memset(o.self, 7, CM_PK_BYTES);
	o.root_every = 4;
	o.root_hold_ms = hold_ms;
	ix_repl_io io = {.ctx = d, .log_size = io_log_size, .log_entry = io_log_entry, .log_read = io_log_read,
			 .log_root = io_log_root, .log_append = io_log_append, .log_truncate = io_log_truncate,
			 .persist = io_persist, .send = io_send, .ledger_submit = io_ledger_submit,
			 .write_done = io_write_done, .sign = io_sign, .verify = io_verify, .now_ms = io_now};
	ix_repl_persist st;
	memset(&st, 0, sizeof(st));
	ix_repl *r = NULL;
	if (ix_repl_create(&o, &io, &st, &r) != CM_OK)
		return NULL;
	ix_repl_config c;
	memset(&c, 0, sizeof(c));
	c.epoch = 1;
	c.n = 1;
	memcpy(c.replicas[0], o.self, CM_PK_BYTES);
	char err[128];
	if (ix_repl_on_config(r, &c, err, sizeof(err)) != CM_OK) {
		ix_repl_destroy(r);
		return NULL;
	}
	return r;
}

/* n more entries written through the core. */
static int write_n(ix_repl *r, struct disk *d, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		uint8_t data[8] = {(uint8_t)d->size, 1, 2, 3, 4, 5, 6, 7};
		ix_repl_entry e;
		uint64_t first;
		memset(&e, 0, sizeof(e));
		e.seq = d->size;
		e.epoch = 1;
		e.data = data;
		e.len = sizeof(data);
		int rc = ix_repl_write(r, &e, 1, IX_REPL_ONE, d->now + 1000, d->size + 1, &first);
		if (rc != CM_OK)
			return rc;
	}
	return CM_OK;
}

static int commit(ix_repl *r, struct disk *d, uint64_t size)
{
	uint8_t root[CM_HASH_BYTES];
	int rc = cm_merkle_root(d->mk, size, root);
	return rc == CM_OK ? ix_repl_on_commit_root(r, size, root) : rc;
}

static void test_hold(void)
{
	tap_begin("a named size stays named until committed or the hold passes");
	struct disk d = {0};
	TAP_EQ(cm_merkle_new(&d.mk, &cm_merkle_blake2b), CM_OK);
	ix_repl *r = primary(&d, 1000);
	TAP_CHECK(r != NULL);
	if (r) {
		TAP_EQ(write_n(r, &d, 5), CM_OK);
		TAP_EQ(ix_repl_root_size(r), 4);
		/* writes go on: 8 and 12 are reached, 4 stays named (not committed) */
		TAP_EQ(write_n(r, &d, 8), CM_OK);
		d.now = 500;
		TAP_EQ(ix_repl_root_size(r), 4);
		/* the ledger commits 4: the next multiple the log holds is named */
		TAP_EQ(commit(r, &d, 4), CM_OK);
		TAP_EQ(ix_repl_floor(r), 4);
		TAP_EQ(ix_repl_root_size(r), 12);
		TAP_EQ(write_n(r, &d, 8), CM_OK);
		d.now = 1400;
		TAP_EQ(ix_repl_root_size(r), 12); /* named at 500: held until 1500 */
		/* 12 never commits: once the hold passed a newer size is named */
		d.now = 1500;
		TAP_EQ(ix_repl_root_size(r), 20);
		ix_repl_destroy(r);
	}
	cm_merkle_free(d.mk);
	tap_end();
}

static void test_no_hold(void)
{
	tap_begin("without a hold every multiple is named as the log reaches it");
	struct disk d = {0};
	TAP_EQ(cm_merkle_new(&d.mk, &cm_merkle_blake2b), CM_OK);
	ix_repl *r = primary(&d, 0);
	TAP_CHECK(r != NULL);
	if (r) {
		TAP_EQ(write_n(r, &d, 5), CM_OK);
		TAP_EQ(ix_repl_root_size(r), 4);
		TAP_EQ(write_n(r, &d, 8), CM_OK);
		TAP_EQ(ix_repl_root_size(r), 12);
		ix_repl_destroy(r);
	}
	cm_merkle_free(d.mk);
	tap_end();
}

int main(void)
{
	test_hold();
	test_no_hold();
	return tap_done();
}
