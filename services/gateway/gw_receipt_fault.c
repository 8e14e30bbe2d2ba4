/* What a failed Settle's message asks of the gateway (gw_receipt.h). The
 * ledger names the first receipt it could not settle, and the field
 * (services/ledger/lg_st_settle.c for a failure in a block, lg_tx.c for a
 * refusal at admission); the transaction's own checks (lg_state.c) and the
 * mempool's (lg_node_admit.c) name no receipt. */
#include "gw_receipt.h"

#include <stdio.h>
#include <string.h>

static const char *const names[] = {
	[GW_FAULT_RETRY] = "retry",           [GW_FAULT_DROP_NODE] = "drop_node",
	[GW_FAULT_DROP_RECEIPT] = "drop_receipt", [GW_FAULT_SETTLED] = "settled",
	[GW_FAULT_FEE] = "fee",               [GW_FAULT_ALLOWANCE] = "allowance",
	[GW_FAULT_BALANCE] = "balance",       [GW_FAULT_GAS] = "gas",
};

const char *gw_fault_name(gw_fault_kind k)
{
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

void gw_fault_parse(const char *msg, size_t nreceipts, gw_fault *f)
{
	memset(f, 0, sizeof(*f));
	if (!msg)
		return;
	/* the transaction's own fee: the gateway's account pays it */
	if (strstr(msg, "fee: insufficient balance") || strstr(msg, "insufficient balance:") ||
	    strstr(msg, "sender: unknown account")) {
		f->kind = GW_FAULT_GAS;
		return;
	}
	const char *p = strstr(msg, "settle.receipts[");
	size_t i, j;
	int used = 0;
	if (!p || sscanf(p, "settle.receipts[%zu]%n", &i, &used) != 1 || used == 0 || i >= nreceipts)
		return;
	const char *field = p + used;
	f->receipt = i;
	if (sscanf(field, ".ranked_nodes[%zu]", &j) == 1) {
		f->kind = GW_FAULT_DROP_NODE;
		f->node = j;
	} else if (strncmp(field, ".id:", 4) == 0 && strstr(field, "settled already")) {
		f->kind = GW_FAULT_SETTLED;
	} else if (strncmp(field, ".fee:", 5) == 0 && strstr(field, "below search_fee")) {
		f->kind = GW_FAULT_FEE;
	} else if ((strncmp(field, ".fee:", 5) == 0 && strstr(field, "exceeds the allowance")) ||
		   (strncmp(field, ".searcher:", 10) == 0 && (strstr(field, "allowance") || strstr(field, "expired")))) {
		f->kind = GW_FAULT_ALLOWANCE;
	} else if (strncmp(field, ".fee:", 5) == 0 && strstr(field, "searcher")) {
		f->kind = GW_FAULT_BALANCE;
	} else {
		f->kind = GW_FAULT_DROP_RECEIPT; /* its Magu is gone, or it is malformed */
	}
}
