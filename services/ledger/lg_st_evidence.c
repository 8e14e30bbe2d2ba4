/* Evidence against an indexer's search answers (ReportAnswer, ledger.proto):
 * a signed answer that the fragment's committed log contradicts, judged by
 * cm_answer_fraud (common/cm_answer.h), the same function gateways spot-check
 * with. Deterministic: integer and byte comparisons, one ed25519 verification
 * and one Merkle path, against the committed root this block reads. */
#include "lg_state_int.h"
#include "cm_answer.h"

#include <stdio.h>
#include <string.h>

/* A proven lie costs the signer answer_fraud_slash and its freedom (jailed),
 * once per (signer, answer digest); the reporter receives
 * answer_fraud_reward_pct percent of what was slashed, the rest is burnt. */
int lg_st_report_answer(lg_state *st, const Muri__V1__Transaction *t)
{
	const Muri__V1__ReportAnswer *ra = t->report_answer;
	const Muri__V1__LocalSearchResponse *a = ra->answer;
	uint8_t digest[CM_HASH_BYTES];
	char reason[160];
	const char *why = NULL;
	uint64_t slashed, reward;
	lg_fragment f;
	lg_indexer ix;
	lg_account rep;
	int rc;

	if ((rc = lg_store_fragment_get(st->store, ra->magu, ra->fragment, &f)) == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "report_answer: fragment %u of \"%s\" does not exist", ra->fragment, ra->magu);
	if (rc != CM_OK)
		return rc;
	if (f.committed_size == 0)
		return lg_st_fail(st, "report_answer: fragment %u of \"%s\" has no committed root to judge by",
				  ra->fragment, ra->magu);
	if ((rc = lg_store_indexer_get(st->store, a->signer.data, &ix)) == CM_ERR_NOTFOUND)
		return lg_st_fail(st, "report_answer.answer.signer: %s is not an indexer", lg_st_kh(a->signer.data).s);
	if (rc != CM_OK)
		return rc;
	cm_answer_evidence e = {
		.node = a->signer.data,
		.query = ra->query.data,
		.magu = ra->magu,
		.fragment = ra->fragment,
		.answer = a,
		.by_root = ra->by_root,
		.hit = ra->hit,
		.leaf = ra->leaf.data,
		.leaf_len = ra->leaf.len,
		.path = ra->leaf_path.data ? ra->leaf_path.data : (const uint8_t *)"",
		.path_len = ra->leaf_path.len / CM_HASH_BYTES,
		.committed_size = f.committed_size,
		.committed_root = f.committed_root,
	};
	rc = cm_answer_fraud(&e, &why);
	if (rc == CM_ERR_VERIFY)
		return lg_st_fail(st, "report_answer: no lie shown (%s)", why);
	if (rc != CM_OK)
		return lg_st_fail(st, "report_answer: not evidence (%s)", why);
	if (cm_answer_digest(digest, ra->query.data, ra->magu, ra->fragment, a) != CM_OK)
		return lg_st_fail(st, "report_answer.answer: cannot be digested");
	if ((rc = lg_store_answer_fraud_seen(st->store, a->signer.data, digest)) < 0)
		return rc;
	if (rc)
		return lg_st_fail(st, "report_answer: %s was punished already for this answer",
				  lg_st_kh(a->signer.data).s);
	snprintf(reason, sizeof(reason), "false answer: fragment %u of \"%.40s\": %.60s", ra->fragment, ra->magu,
		 why);
	if ((rc = lg_store_answer_fraud_put(st->store, a->signer.data, digest)) != CM_OK ||
	    (rc = lg_st_penalize(st, a->signer.data, lg_st_pu(st, P_ANSWER_FRAUD_SLASH), 1, reason, &slashed)) != CM_OK)
		return rc;
	reward = slashed / 100 * lg_st_pu(st, P_ANSWER_FRAUD_REWARD_PCT) +
		 slashed % 100 * lg_st_pu(st, P_ANSWER_FRAUD_REWARD_PCT) / 100;
	if (reward) {
		if ((rc = lg_st_account(st, t->sender.data, &rep)) != CM_OK)
			return rc;
		rep.balance += reward;
		if ((rc = lg_store_account_put(st->store, &rep)) != CM_OK)
			return rc;
	}
	return lg_st_note(st, "%s slashed %llu and jailed for a false answer on fragment %u of \"%s\" (%s); reporter paid %llu",
			  lg_st_kh(a->signer.data).s, (unsigned long long)slashed, ra->fragment, ra->magu, why,
			  (unsigned long long)reward);
}
