/* The ledger client: signing with the account's nonce, submission with
 * replica failover and nonce recovery, commit waits by GetTransaction polls.
 * One mutex orders the nonce and the admission of each transaction, so that a
 * sender's transactions reach the mempool in nonce order; waits run outside it. */
#include "cm_ledger_client.h"
#include "cm_err.h"
#include "cm_time.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct cm_ledger_client {
	char *chain_id;
	size_t n;
	cm_rpc_client **ch;
	cm_keypair key;
	uint64_t fee;
	int call_timeout_ms, commit_timeout_ms, poll_ms, max_attempts;
	atomic_size_t cur;               /* the replica tried first */
	pthread_mutex_t mu;              /* nonce and admission order */
	int nonce_known;
	uint64_t next_nonce;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int cm_ledger_client_new(const cm_ledger_client_opts *o, cm_ledger_client **out, char *err, size_t errlen)
{
	if (!o || !out)
		return fail(err, errlen, CM_ERR_INVALID, "ledger client: missing options");
	*out = NULL;
	if (!o->chain_id || !o->chain_id[0])
		return fail(err, errlen, CM_ERR_INVALID, "chain_id: required");
	if (o->n < 1 || o->n > CM_LC_MAX_REPLICAS || !o->addrs)
		return fail(err, errlen, CM_ERR_INVALID, "replicas: %zu, expected 1..%d addresses", o->n,
			    CM_LC_MAX_REPLICAS);
	if (!o->key)
		return fail(err, errlen, CM_ERR_INVALID, "key: required");
	if (o->call_timeout_ms < 0 || o->commit_timeout_ms < 0 || o->poll_ms < 0 || o->max_attempts < 0)
		return fail(err, errlen, CM_ERR_INVALID, "timeouts and max_attempts: must not be negative");
	cm_ledger_client *c = calloc(1, sizeof(*c));
	if (!c)
		return fail(err, errlen, CM_ERR_NOMEM, "out of memory");
	c->chain_id = strdup(o->chain_id);
	c->ch = calloc(o->n, sizeof(*c->ch));
	if (!c->chain_id || !c->ch) {
		cm_ledger_client_free(c);
		return fail(err, errlen, CM_ERR_NOMEM, "out of memory");
	}
	c->n = o->n;
	for (size_t i = 0; i < o->n; i++) {
		char e[256] = "";
		cm_rpc_client_opts co = {.target = o->addrs[i], .max_message = o->max_message,
					 .tls_ca_file = o->tls_ca_file, .tls_expect_node = o->pks ? o->pks[i] : NULL};
		if (!o->addrs[i] || cm_rpc_client_new(&co, &c->ch[i], e, sizeof(e)) != CM_OK) {
			cm_ledger_client_free(c);
			return fail(err, errlen, CM_ERR_INVALID, "replicas[%zu]: %s", i,
				    o->addrs[i] ? e : "missing address");
		}
	}
	memcpy(&c->key, o->key, sizeof(c->key));
	c->fee = o->fee;
	c->call_timeout_ms = o->call_timeout_ms ? o->call_timeout_ms : CM_LC_CALL_TIMEOUT_DEFAULT;
	c->commit_timeout_ms = o->commit_timeout_ms ? o->commit_timeout_ms : CM_LC_COMMIT_TIMEOUT_DEFAULT;
	c->poll_ms = o->poll_ms ? o->poll_ms : CM_LC_POLL_DEFAULT;
	c->max_attempts = o->max_attempts ? o->max_attempts : (int)(2 * o->n);
	atomic_init(&c->cur, 0);
	pthread_mutex_init(&c->mu, NULL);
	*out = c;
	return CM_OK;
}

void cm_ledger_client_free(cm_ledger_client *c)
{
	if (!c)
		return;
	if (c->ch) {
		for (size_t i = 0; i < c->n; i++)
			cm_rpc_client_free(c->ch[i]);
		pthread_mutex_destroy(&c->mu);
	}
	free(c->ch);
	free(c->chain_id);
	cm_keypair_wipe(&c->key);
	free(c);
}

const uint8_t *cm_ledger_client_pubkey(const cm_ledger_client *c)
{
	return c->key.pk;
}

uint64_t cm_ledger_client_next_nonce(cm_ledger_client *c, int *known)
{
	pthread_mutex_lock(&c->mu);
	uint64_t n = c->nonce_known ? c->next_nonce : 0;
	if (known)
		*known = c->nonce_known;
	pthread_mutex_unlock(&c->mu);
	return n;
}

static int transient(int code)
{
	return code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED;
}

/* One unary call, moving to the next replica on a transient failure. A
 * replica that is not up yet (a network starting, a replica restarting)
 * fails at once, so after each round of failures it pauses (50 ms, doubling
 * to 500 ms) and tries again until max_attempts calls were made and
 * call_timeout_ms has passed. *from (may be NULL) receives the replica that
 * answered last. */
static int call_any(cm_ledger_client *c, const char *method, const ProtobufCMessage *req,
		    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, cm_rpc_status *st,
		    size_t *from)
{
	cm_rpc_status local;
	if (!st)
		st = &local;
	int rc = CM_ERR_UNAVAILABLE;
	size_t start = atomic_load(&c->cur) % c->n;
	uint64_t t0 = cm_now_us(), pause_ms = 50;
	for (int a = 0;; a++) {
		size_t r = (start + (size_t)a) % c->n;
		memset(st, 0, sizeof(*st));
		rc = cm_rpc_unary(c->ch[r], method, req, desc, resp, c->call_timeout_ms, st);
		if (from)
			*from = r;
		if (rc == CM_OK || !transient(st->code)) {
			atomic_store(&c->cur, r);
			return rc;
		}
		if (a + 1 >= c->max_attempts && cm_now_us() - t0 >= (uint64_t)c->call_timeout_ms * 1000)
			break;
		if ((size_t)(a + 1) % c->n == 0) {
			cm_sleep_ms(pause_ms);
			pause_ms = pause_ms * 2 > 500 ? 500 : pause_ms * 2;
		}
	}
	return rc;
}

int cm_ledger_client_call(cm_ledger_client *c, const char *method, const ProtobufCMessage *req,
			  const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp, cm_rpc_status *st)
{
	if (!c || !method || !req || !resp_desc || !resp)
		return CM_ERR_INVALID;
	return call_any(c, method, req, resp_desc, resp, st, NULL);
}

static int desc_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

int cm_ledger_client_height(cm_ledger_client *c, uint64_t *height, char *err, size_t errlen)
{
	uint64_t got[CM_LC_MAX_REPLICAS];
	size_t n = 0, f = (c->n - 1) / 3, used = 0;
	if (err && errlen)
		err[0] = 0;
	for (size_t r = 0; r < c->n; r++) {
		Muri__V1__StatusRequest req = MURI__V1__STATUS_REQUEST__INIT;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		memset(&st, 0, sizeof(st));
		int rc = cm_rpc_unary(c->ch[r], "/muri.v1.Ledger/Status", &req.base, &muri__v1__status_response__descriptor,
				      &resp, c->call_timeout_ms, &st);
		const char *why = rc == CM_OK ? "no height in its Status" : st.message;
		if (rc == CM_OK) {
			const Muri__V1__StatusResponse *sr = (const Muri__V1__StatusResponse *)resp;
			for (size_t i = 0; i < sr->n_details; i++) {
				const char *v = sr->details[i]->value;
				char *end = NULL;
				if (strcmp(sr->details[i]->key, "height") || !v || !*v)
					continue;
				unsigned long long h = strtoull(v, &end, 10);
				if (*end == 0) {
					got[n++] = h;
					why = NULL;
				}
				break;
			}
			protobuf_c_message_free_unpacked(resp, NULL);
		}
		if (why && err && used + 1 < errlen)
			used += (size_t)snprintf(err + used, errlen - used, "%s%s: %s", used ? "; " : "",
						 cm_rpc_client_target(c->ch[r]), why);
		if (used >= errlen)
			used = errlen - 1;
	}
	if (n < f + 1)
		return CM_ERR_UNAVAILABLE;
	qsort(got, n, sizeof(got[0]), desc_u64);
	*height = got[f];
	return CM_OK;
}

/* The account's committed nonce (0 for an account the ledger does not know). */
static int read_nonce(cm_ledger_client *c, uint64_t *nonce, char *err, size_t errlen)
{
	Muri__V1__AccountRequest req = MURI__V1__ACCOUNT_REQUEST__INIT;
	req.address.data = c->key.pk;
	req.address.len = CM_PK_BYTES;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	size_t r = 0;
	int rc = call_any(c, "/muri.v1.Ledger/GetAccount", &req.base, &muri__v1__account__descriptor, &resp, &st, &r);
	if (rc == CM_OK) {
		*nonce = ((Muri__V1__Account *)resp)->nonce;
		protobuf_c_message_free_unpacked(resp, NULL);
		return CM_OK;
	}
	if (st.code == GRPC_STATUS_NOT_FOUND) {
		*nonce = 0;
		return CM_OK;
	}
	return fail(err, errlen, rc, "GetAccount at %s: %s: %s", cm_rpc_client_target(c->ch[r]),
		    cm_rpc_code_name(st.code), st.message);
}

/* GetTransaction: CM_OK with the state when some replica knows the hash,
 * CM_ERR_NOTFOUND when none does, another code when none answered. */
static int tx_status(cm_ledger_client *c, const uint8_t hash[CM_HASH_BYTES], cm_ledger_result *res,
		     cm_rpc_status *st)
{
	Muri__V1__TxRequest req = MURI__V1__TX_REQUEST__INIT;
	req.tx_hash.data = (uint8_t *)hash;
	req.tx_hash.len = CM_HASH_BYTES;
	ProtobufCMessage *resp = NULL;
	int rc = call_any(c, "/muri.v1.Ledger/GetTransaction", &req.base, &muri__v1__tx_status__descriptor, &resp, st,
			  NULL);
	if (rc != CM_OK)
		return st->code == GRPC_STATUS_NOT_FOUND ? CM_ERR_NOTFOUND : rc;
	Muri__V1__TxStatus *s = (Muri__V1__TxStatus *)resp;
	res->state = s->state;
	res->height = s->height;
	snprintf(res->message, sizeof(res->message), "%s", s->message ? s->message : "");
	protobuf_c_message_free_unpacked(resp, NULL);
	return CM_OK;
}

/* Packs and signs t; the caller frees stx's two buffers. */
static int sign_tx(cm_ledger_client *c, const Muri__V1__Transaction *t, Muri__V1__SignedTransaction *stx,
		   uint8_t hash[CM_HASH_BYTES])
{
	size_t len = protobuf_c_message_get_packed_size(&t->base);
	if (len > CM_LC_TX_MAX_BYTES)
		return CM_ERR_TOOBIG;
	uint8_t *body = malloc(len ? len : 1), *sig = malloc(CM_SIG_BYTES);
	if (!body || !sig) {
		free(body);
		free(sig);
		return CM_ERR_NOMEM;
	}
	protobuf_c_message_pack(&t->base, body);
	cm_hash(hash, CM_DOM_TX, body, len);
	cm_sign(&c->key, sig, hash, CM_HASH_BYTES);
	muri__v1__signed_transaction__init(stx);
	stx->body.data = body;
	stx->body.len = len;
	stx->signature.data = sig;
	stx->signature.len = CM_SIG_BYTES;
	return CM_OK;
}

static int nonce_conflict(const cm_rpc_status *st)
{
	return st->code == GRPC_STATUS_ALREADY_EXISTS ||
	       (st->code == GRPC_STATUS_FAILED_PRECONDITION && strncmp(st->message, "nonce:", 6) == 0);
}

/* Signs with the next nonce and has a replica admit it; c->mu held. */
static int admit_locked(cm_ledger_client *c, const Muri__V1__Transaction *tx, cm_ledger_result *res, char *err,
			size_t errlen)
{
	Muri__V1__Transaction t = *tx;
	t.chain_id = c->chain_id;
	t.sender.data = c->key.pk;
	t.sender.len = CM_PK_BYTES;
	if (t.fee == 0)
		t.fee = c->fee;
	int rc;
	if (!c->nonce_known) {
		rc = read_nonce(c, &c->next_nonce, err, errlen);
		if (rc != CM_OK)
			return rc;
		c->nonce_known = 1;
	}
	for (int tries = 0;; tries++) {
		t.nonce = c->next_nonce;
		Muri__V1__SignedTransaction stx;
		rc = sign_tx(c, &t, &stx, res->tx_hash);
		if (rc == CM_ERR_TOOBIG)
			return fail(err, errlen, rc, "transaction: encoded body above %u bytes", CM_LC_TX_MAX_BYTES);
		if (rc != CM_OK)
			return fail(err, errlen, rc, "out of memory");
		res->nonce = t.nonce;
		Muri__V1__SubmitRequest req = MURI__V1__SUBMIT_REQUEST__INIT;
		req.tx = &stx;
		ProtobufCMessage *resp = NULL;
		cm_rpc_status st;
		size_t r = 0;
		rc = call_any(c, "/muri.v1.Ledger/SubmitTransaction", &req.base, &muri__v1__submit_response__descriptor,
			      &resp, &st, &r);
		free(stx.body.data);
		free(stx.signature.data);
		if (rc == CM_OK) {
			protobuf_c_message_free_unpacked(resp, NULL);
			res->state = MURI__V1__TX_STATE__TX_PENDING;
			c->next_nonce++;
			return CM_OK;
		}
		res->code = st.code;
		snprintf(res->message, sizeof(res->message), "%s", st.message);
		if (transient(st.code)) {
			/* it may have been admitted somewhere: read the nonce again next time */
			c->nonce_known = 0;
			return fail(err, errlen, rc, "no ledger replica accepted the transaction: last %s: %s: %s",
				    cm_rpc_client_target(c->ch[r]), cm_rpc_code_name(st.code), st.message);
		}
		if (!nonce_conflict(&st))
			return fail(err, errlen, rc, "ledger replica %s refused the transaction: %s: %s",
				    cm_rpc_client_target(c->ch[r]), cm_rpc_code_name(st.code), st.message);
		/* an earlier attempt that timed out may have been admitted after all */
		cm_ledger_result known = *res;
		cm_rpc_status ts;
		if (tx_status(c, res->tx_hash, &known, &ts) == CM_OK) {
			*res = known;
			c->next_nonce++;
			return CM_OK;
		}
		if (tries + 1 >= CM_LC_NONCE_RETRIES)
			return fail(err, errlen, CM_ERR_STATE, "nonce: still conflicting after %d tries: %s",
				    CM_LC_NONCE_RETRIES, st.message);
		uint64_t committed = 0;
		rc = read_nonce(c, &committed, err, errlen);
		if (rc != CM_OK) {
			c->nonce_known = 0;
			return rc;
		}
		/* another transaction pending with this nonce takes it; a used nonce
		 * means the committed one moved past ours */
		c->next_nonce = committed > c->next_nonce ? committed : c->next_nonce + 1;
	}
}

/* 1 when one replica's committed state shows the account's nonce past
 * `nonce` and that same replica knows no transaction tx_hash (committed,
 * failed or pending): another transaction of the account (another client
 * with the same key) took the nonce, and ours can no longer commit. Both
 * reads go to the same replica, whose committed state only grows, so a
 * transaction of ours committed before the nonce read would be found. */
static int nonce_taken(cm_ledger_client *c, const uint8_t tx_hash[CM_HASH_BYTES], uint64_t nonce)
{
	size_t r = atomic_load(&c->cur) % c->n;
	Muri__V1__AccountRequest areq = MURI__V1__ACCOUNT_REQUEST__INIT;
	areq.address.data = c->key.pk;
	areq.address.len = CM_PK_BYTES;
	ProtobufCMessage *resp = NULL;
	cm_rpc_status st;
	if (cm_rpc_unary(c->ch[r], "/muri.v1.Ledger/GetAccount", &areq.base, &muri__v1__account__descriptor, &resp,
			 c->call_timeout_ms, &st) != CM_OK)
		return 0;
	uint64_t used = ((Muri__V1__Account *)resp)->nonce;
	protobuf_c_message_free_unpacked(resp, NULL);
	if (used <= nonce)
		return 0;
	Muri__V1__TxRequest treq = MURI__V1__TX_REQUEST__INIT;
	treq.tx_hash.data = (uint8_t *)tx_hash;
	treq.tx_hash.len = CM_HASH_BYTES;
	resp = NULL;
	if (cm_rpc_unary(c->ch[r], "/muri.v1.Ledger/GetTransaction", &treq.base, &muri__v1__tx_status__descriptor,
			 &resp, c->call_timeout_ms, &st) == CM_OK) {
		protobuf_c_message_free_unpacked(resp, NULL);
		return 0;
	}
	return st.code == GRPC_STATUS_NOT_FOUND;
}

/* cm_ledger_client_wait; with nonce >= 0 (the transaction's), a transaction
 * no replica knows is checked with nonce_taken about once a second, and
 * CM_ERR_EXISTS returned when another transaction took its nonce. */
static int wait_for(cm_ledger_client *c, const uint8_t tx_hash[CM_HASH_BYTES], int timeout_ms, int64_t nonce,
		    cm_ledger_result *res, char *err, size_t errlen)
{
	memcpy(res->tx_hash, tx_hash, CM_HASH_BYTES);
	uint64_t until = cm_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : c->commit_timeout_ms);
	uint64_t next_check = cm_now_ms() + 1000;
	for (;;) {
		cm_rpc_status st;
		int rc = tx_status(c, tx_hash, res, &st);
		if (rc == CM_OK && res->state == MURI__V1__TX_STATE__TX_COMMITTED)
			return CM_OK;
		if (rc == CM_ERR_NOTFOUND && nonce >= 0 && cm_now_ms() >= next_check) {
			if (nonce_taken(c, tx_hash, (uint64_t)nonce))
				return fail(err, errlen, CM_ERR_EXISTS,
					    "nonce %lld was taken by another transaction of this account",
					    (long long)nonce);
			next_check = cm_now_ms() + 1000;
		}
		if (rc == CM_OK && res->state == MURI__V1__TX_STATE__TX_FAILED)
			return fail(err, errlen, CM_ERR_STATE, "transaction failed in block %llu: %s",
				    (unsigned long long)res->height, res->message);
		if (cm_now_ms() >= until)
			return fail(err, errlen, CM_ERR_TIMEOUT,
				    "the transaction did not commit within %d ms (last state %d%s%s)",
				    timeout_ms > 0 ? timeout_ms : c->commit_timeout_ms, rc == CM_OK ? res->state : 0,
				    rc == CM_OK ? "" : ", ", rc == CM_OK ? "" : st.message);
		cm_sleep_ms((uint64_t)c->poll_ms);
	}
}

int cm_ledger_client_wait(cm_ledger_client *c, const uint8_t tx_hash[CM_HASH_BYTES], int timeout_ms,
			  cm_ledger_result *res, char *err, size_t errlen)
{
	cm_ledger_result local;
	if (!c || !tx_hash)
		return fail(err, errlen, CM_ERR_INVALID, "tx_hash: required");
	if (!res) {
		memset(&local, 0, sizeof(local));
		res = &local;
	}
	return wait_for(c, tx_hash, timeout_ms, -1, res, err, errlen);
}

int cm_ledger_client_submit(cm_ledger_client *c, const Muri__V1__Transaction *tx, unsigned flags,
			    cm_ledger_result *res, char *err, size_t errlen)
{
	cm_ledger_result local;
	if (!res)
		res = &local;
	memset(res, 0, sizeof(*res));
	if (!c || !tx)
		return fail(err, errlen, CM_ERR_INVALID, "transaction: missing");
	if (tx->payload_case == MURI__V1__TRANSACTION__PAYLOAD__NOT_SET)
		return fail(err, errlen, CM_ERR_INVALID, "payload: not set");
	for (int taken = 0;; taken++) {
		pthread_mutex_lock(&c->mu);
		int rc = admit_locked(c, tx, res, err, errlen);
		pthread_mutex_unlock(&c->mu);
		if (rc != CM_OK || !(flags & CM_LC_WAIT) || res->state == MURI__V1__TX_STATE__TX_COMMITTED)
			return rc;
		uint8_t hash[CM_HASH_BYTES];
		memcpy(hash, res->tx_hash, CM_HASH_BYTES);
		uint64_t nonce = res->nonce;
		rc = wait_for(c, hash, 0, (int64_t)nonce, res, err, errlen);
		res->nonce = nonce;
		if (rc != CM_ERR_EXISTS || taken + 1 >= CM_LC_NONCE_RETRIES)
			return rc;
		/* another client of the same key took the nonce while ours waited
		 * in a mempool (which then drops ours): sign again with a fresh one */
		pthread_mutex_lock(&c->mu);
		c->nonce_known = 0;
		pthread_mutex_unlock(&c->mu);
	}
}
