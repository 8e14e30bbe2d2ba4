/* The indexer driven by the ledger: it follows the chain from the genesis
 * replicas (verified, common/cm_follower.h) and applies what final blocks
 * say about its fragments (configurations, committed roots), persisting how
 * far it applied; it also submits its own transactions (failover requests)
 * through a ledger client signed with the indexer's key. */
#ifndef IX_CHAIN_H
#define IX_CHAIN_H

#include <stddef.h>
#include <stdint.h>

#include "cm_crypto.h"
#include "cm_ledger_client.h"
#include "ix_service.h"

#define IX_CHAIN_STATE_FILE "chain.state" /* in data_dir: "height hash root" of the last block applied */
#define IX_CHAIN_QUEUE_DEFAULT 1024       /* final blocks held until vouched for */

typedef struct ix_chain ix_chain;

typedef struct ix_chain_opts {
	const char *genesis_file;  /* the ledger's genesis (chain_id and replica lines are read) */
	const char *data_dir;      /* where IX_CHAIN_STATE_FILE lives */
	const cm_keypair *key;     /* the indexer's key: its identity in configurations, signs its transactions */
	ix_service *svc;           /* the fragments the feed configures */
	uint64_t fee;              /* fee of the indexer's transactions */
	size_t queue_max;          /* 0: IX_CHAIN_QUEUE_DEFAULT */
	int stall_ms;              /* the follower's replica switch; 0: its default */
	const char *tls_ca_file;   /* NULL: plaintext to the ledger */
	uint64_t root_every;       /* 0: submit no roots; else the roots at the sizes the primaries name
				    * (ix_service_opts root_every, root_ms) */
	int root_interval_ms;      /* how often the roots are looked at; 0: 1000 */
} ix_chain_opts;

/* Reads the genesis and the persisted follow point and starts following.
 * The caller owns *out (ix_chain_free). err names the file and line. */
int ix_chain_start(const ix_chain_opts *o, ix_chain **out, char *err, size_t errlen);
/* Stops following (joins) and frees. Accepts NULL. */
void ix_chain_free(ix_chain *c);
/* The ledger client (the indexer's account); owned by c. */
cm_ledger_client *ix_chain_client(ix_chain *c);
/* The last height applied. */
uint64_t ix_chain_applied(ix_chain *c);

/* ix_chain_proofs.c, on ix_chain's threads: CommitRoot for the fragments this
 * node is a member of, at each multiple of every above the committed size;
 * AnswerChallenge for a challenge addressed to this node. */
void ixc_commit_roots(ix_service *s, cm_ledger_client *lc, const char *chain_id);
struct frag;
/* A split's half this node holds: derives its records from the parent's
 * frozen log if not done yet (ix_split.c): this node's copy, or with lc
 * (the root submitter's thread only) one pass of fetching it from the
 * parent's replicas; logs why not. f may be NULL. */
void ixc_derive(ix_service *s, struct frag *f, cm_ledger_client *lc);
void ixc_answer_challenge(ix_service *s, cm_ledger_client *lc, const Muri__V1__Challenge *ch);

#endif
