/* muri split COLLECTION FRAGMENT: the owner's SplitFragment transaction
 * (README "Fragments that split"): the fragment seals and splits in two; the
 * ledger's message names the halves' fragment numbers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cm_err.h"

int cli_cmd_split(int argc, char **argv)
{
	cli_conn c = {0};
	const cli_opt opts[] = {CLI_CONN_OPTS(c), {NULL, 0, NULL}};
	static const char help[] =
		"usage: muri split COLLECTION FRAGMENT [options]\n"
		"Splits one fragment of a collection in two (a SplitFragment transaction, which only the\n"
		"collection's owner may send): the fragment seals, freezes at its committed root, and two new\n"
		"fragments take the halves of its ids; `muri collection describe` shows their states.\n"
		"Fragments also split by themselves at the chain's param.split_size log entries.\n" CLI_CONN_HELP;
	char *pos[2];
	int npos, prc = cli_parse("split", help, argc, argv, opts, pos, 2, &npos);
	if (prc)
		return prc < 0 ? 0 : prc;
	if (npos != 2)
		return cli_fail(CLI_USAGE, "split", "expected `muri split COLLECTION FRAGMENT` (muri split --help)");
	if (!pos[0][0])
		return cli_fail(CLI_USAGE, "split", "COLLECTION: empty");
	char *end;
	errno = 0;
	unsigned long fragment = strtoul(pos[1], &end, 10);
	if (pos[1][0] < '0' || pos[1][0] > '9' || *end || errno || fragment > UINT32_MAX)
		return cli_fail(CLI_USAGE, "split", "FRAGMENT: \"%s\" is not a fragment number (0 to %u)", pos[1],
				UINT32_MAX);
	cm_ledger_client *lc = cli_ledger("split", &c);
	if (!lc)
		return CLI_FAIL;
	Muri__V1__Transaction t = MURI__V1__TRANSACTION__INIT;
	Muri__V1__SplitFragment sf = MURI__V1__SPLIT_FRAGMENT__INIT;
	sf.magu = pos[0];
	sf.fragment = (uint32_t)fragment;
	t.payload_case = MURI__V1__TRANSACTION__PAYLOAD_SPLIT_FRAGMENT;
	t.split_fragment = &sf;
	cm_ledger_result res;
	char err[600];
	int rc = cm_ledger_client_submit(lc, &t, CM_LC_WAIT, &res, err, sizeof(err));
	cm_ledger_client_free(lc);
	if (rc != CM_OK)
		return cli_fail(CLI_FAIL, "split", "%s", rc == CM_ERR_STATE ? res.message : err);
	if (c.json) {
		printf("{\"collection\":");
		cm_json_str(stdout, pos[0]);
		printf(",\"fragment\":%lu,\"height\":%llu,\"message\":", fragment, (unsigned long long)res.height);
		cm_json_str(stdout, res.message);
		printf("}\n");
	} else {
		printf("%s: committed at height %llu\n", res.message, (unsigned long long)res.height);
	}
	return 0;
}
