/* Metadata filters, differentially: the input holds a Filter and up to 16
 * records' Metadata (each length-prefixed: a little-endian u16 for the
 * filter, then one byte per record). Every record the indexer's rules
 * accept is indexed in an in-memory copy of the metadata tables; the filter
 * the rules accept is then answered four times: by the in-memory postings
 * search uses, as a set (ix_postings_seqs) and compiled into the per-seq
 * test the graph walk applies (ix_postings_compile, ix_pfilter_match), both
 * fed record by record and rebuilt from the tables; by the SQL path they
 * fall back to (ix_filter_seqs) and by the record-by-record rule
 * (ix_filter_match). Oracle: all name the same records, and the compiled
 * filter's estimate is at least their number; a refusal says why. */
#include <sqlite3.h>
#include <string.h>

#include "cm_arena.h"
#include "cm_err.h"
#include "fuzz.h"
#include "ix_filter.h"
#include "ix_postings.h"
#include "ix_record.h"

#define MAX_RECORDS 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t flen = (size_t)data[0] | (size_t)data[1] << 8;
	if (flen > size - 2)
		return 0;
	Muri__V1__Filter *fpb = muri__v1__filter__unpack(NULL, flen, data + 2);
	if (!fpb)
		return 0;
	cm_arena a;
	cm_arena_init(&a, 1u << 24);
	char err[512] = "";
	ix_filter f;
	if (ix_filter_from_pb(fpb, &a, &f, err, sizeof err) != CM_OK) {
		FUZZ_CHECK(err[0] != '\0');
		goto out_filter;
	}
	if (f.n == 0)
		goto out_filter;

	sqlite3 *db = NULL;
	FUZZ_CHECK(sqlite3_open(":memory:", &db) == SQLITE_OK);
	FUZZ_CHECK(ix_meta_schema(db, err, sizeof err) == CM_OK);
	ix_meta_stmts st;
	memset(&st, 0, sizeof st);
	FUZZ_CHECK(ix_meta_prepare(db, &st) == CM_OK);
	ix_postings *fed = ix_postings_new(0), *loaded = ix_postings_new(0);
	FUZZ_CHECK(fed && loaded);

	Muri__V1__Metadata *mpb[MAX_RECORDS];
	int expect[MAX_RECORDS];
	size_t nrec = 0;
	size_t off = 2 + flen;
	while (off < size && nrec < MAX_RECORDS) {
		size_t len = data[off++];
		if (len > size - off)
			len = size - off;
		mpb[nrec] = muri__v1__metadata__unpack(NULL, len, data + off);
		off += len;
		if (!mpb[nrec])
			continue;
		ix_field *fields = NULL;
		uint32_t nfields = 0;
		if (ix_meta_from_pb(mpb[nrec], &a, "metadata", &fields, &nfields, err, sizeof err) != CM_OK) {
			FUZZ_CHECK(err[0] != '\0');
			muri__v1__metadata__free_unpacked(mpb[nrec], NULL);
			continue;
		}
		FUZZ_CHECK(ix_meta_insert(&st, nrec + 1, fields, nfields) == CM_OK);
		ix_postings_add(fed, nrec + 1, fields, nfields);
		expect[nrec] = ix_filter_match(&f, fields, nfields);
		nrec++;
	}

	uint64_t *seqs = NULL;
	size_t nseqs = 0;
	FUZZ_CHECK(ix_filter_seqs(db, &f, &seqs, &nseqs, err, sizeof err) == CM_OK);
	size_t j = 0;
	for (size_t i = 0; i < nrec; i++) {
		int got = j < nseqs && seqs[j] == i + 1;
		if (got)
			j++;
		FUZZ_CHECK(got == expect[i]);
	}
	FUZZ_CHECK(j == nseqs);
	FUZZ_CHECK(ix_postings_load(loaded, db, err, sizeof err) == CM_OK);
	ix_postings *both[] = {fed, loaded};
	for (int b = 0; b < 2; b++) {
		uint64_t *ps = NULL;
		size_t np = 0;
		FUZZ_CHECK(ix_postings_seqs(both[b], &f, nrec + 1, &ps, &np) == CM_OK);
		FUZZ_CHECK(np == nseqs && (np == 0 || memcmp(ps, seqs, np * sizeof *ps) == 0));
		free(ps);
		ix_pfilter *pf = NULL;
		size_t est = 0;
		FUZZ_CHECK(ix_postings_compile(both[b], &f, &pf, &est) == CM_OK);
		FUZZ_CHECK(est >= nseqs);
		for (size_t i = 0, k = 0; i < nrec + 3; i++) {
			int in = k < nseqs && seqs[k] == i;
			k += in;
			FUZZ_CHECK(ix_pfilter_match(pf, i) == in);
		}
		ix_pfilter_free(pf);
	}
	ix_postings_free(fed);
	ix_postings_free(loaded);
	free(seqs);
	for (size_t i = 0; i < nrec; i++)
		muri__v1__metadata__free_unpacked(mpb[i], NULL);
	ix_meta_finalize(&st);
	sqlite3_close(db);
out_filter:
	cm_arena_free(&a);
	muri__v1__filter__free_unpacked(fpb, NULL);
	return 0;
}
