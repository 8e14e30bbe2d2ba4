/* Tests of common/cm_cell: the base fragment is the routing unsplit Magus
 * always had (first 8 bytes mod the fragment count), the two halves of a
 * cell partition it, splits spread even ids a client chose in sequence, and
 * a fixed known split bit so that a change of hash (which would move
 * records on every replica) is noticed. */
#include "tap.h"
#include "cm_cell.h"
#include "cm_crypto.h"
#include "cm_err.h"
#include "cm_splitmap.h"

#include <stdint.h>

#define IDS 20000

static void id_of(uint8_t id[16], uint64_t hi, uint64_t lo)
{
	for (int i = 0; i < 8; i++) {
		id[i] = (uint8_t)(hi >> (56 - 8 * i));
		id[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
	}
}

static void test_base_is_prefix_mod(void)
{
	uint8_t id[16];
	id_of(id, 0x0123456789abcdefULL, 7);
	TAP_EQ(cm_cell_base(id, 4), 0x0123456789abcdefULL % 4);
	TAP_EQ(cm_cell_base(id, 7), 0x0123456789abcdefULL % 7);
	TAP_EQ(cm_cell_base(id, 0), 0);
	cm_cell r = cm_cell_root(0x0123456789abcdefULL % 7);
	TAP_CHECK(cm_cell_contains(&r, id, 7));
	r.base = (r.base + 1) % 7;
	TAP_CHECK(!cm_cell_contains(&r, id, 7));
}

/* Three generations below base 1 of 3: each id of a cell is in exactly one
 * of its halves, and ids a client numbered 0, 1, 2, ... spread evenly. */
static void test_halves_partition_and_spread(void)
{
	cm_cell gen[8], kids[2];
	size_t ngen = 1, count[8] = {0};
	uint8_t id[16];
	gen[0] = cm_cell_root(1);
	for (int d = 0; d < 3; d++) {
		cm_cell next[8];
		size_t nn = 0;
		for (size_t i = 0; i < ngen; i++) {
			cm_cell_children(&gen[i], kids);
			TAP_EQ(kids[0].depth, gen[i].depth + 1);
			TAP_EQ(kids[0].path, gen[i].path);
			TAP_EQ(kids[1].path, gen[i].path | (1ULL << gen[i].depth));
			next[nn++] = kids[0];
			next[nn++] = kids[1];
		}
		memcpy(gen, next, nn * sizeof(*gen));
		ngen = nn;
	}
	TAP_EQ(ngen, 8);
	size_t in_base = 0;
	for (uint64_t k = 0; k < IDS; k++) {
		id_of(id, k * 3 + 1, k); /* base 1 of 3 for every k */
		cm_cell root = cm_cell_root(1);
		TAP_CHECK(cm_cell_contains(&root, id, 3));
		int owners = 0;
		for (size_t i = 0; i < ngen; i++)
			if (cm_cell_contains(&gen[i], id, 3)) {
				owners++;
				count[i]++;
			}
		TAP_EQ(owners, 1);
		in_base++;
	}
	for (size_t i = 0; i < ngen; i++) /* 2500 expected; 5 sigma is ~235 */
		TAP_CHECK(count[i] > 2250 && count[i] < 2750);
	id_of(id, 2 * 3 + 2, 0); /* base 2: in none */
	for (size_t i = 0; i < ngen; i++)
		TAP_CHECK(!cm_cell_contains(&gen[i], id, 3));
	TAP_EQ(in_base, IDS);
}

static void test_known_split_bits(void)
{
	uint8_t id[16] = {0}, h[32];
	cm_hash(h, CM_DOM_SPLIT, id, 16);
	uint64_t want = 0;
	for (int i = 0; i < 8; i++)
		want = want << 8 | h[i];
	TAP_CHECK(cm_cell_hash(id) == want);
	TAP_EQ(CM_DOM_SPLIT, 0x18);
	/* the deepest cell holds exactly its own hash's ids */
	cm_cell c = {0, CM_CELL_DEPTH_MAX, want & ((1ULL << CM_CELL_DEPTH_MAX) - 1)};
	TAP_CHECK(cm_cell_contains(&c, id, 1));
	c.path ^= 1ULL << (CM_CELL_DEPTH_MAX - 1);
	TAP_CHECK(!cm_cell_contains(&c, id, 1));
}

/* An id whose base is b (of nbase) and whose split bits start with bits
 * (depth of them). */
static void id_in(uint8_t id[16], uint32_t nbase, uint32_t b, uint64_t bits, uint32_t depth)
{
	for (uint64_t k = 0;; k++) {
		id_of(id, k * nbase + b, k);
		if ((cm_cell_hash(id) & ((1ULL << depth) - 1)) == bits)
			return;
	}
}

/* Two base fragments: 0 split into 2 and 3, 3 split into 4 and 5; 2 and 4
 * live, 5 not yet; 1 sealing. */
static void test_splitmap(void)
{
	static cm_splitmap m;
	cm_split_target t[8];
	size_t n;
	uint32_t f;
	uint8_t id[16];
	memset(&m, 0, sizeof(m));
	m.nbase = 2;
	m.n = 6;
	for (uint32_t i = 0; i < 6; i++)
		m.f[i].present = 1;
	m.f[0] = (cm_splitfrag){1, CM_PHASE_RETIRED, cm_cell_root(0), {2, 3}, 0, 0, 1};
	m.f[1] = (cm_splitfrag){1, CM_PHASE_SEALING, cm_cell_root(1), {6, 7}, 0, 0, 1};
	m.f[2] = (cm_splitfrag){1, CM_PHASE_SERVING, {0, 1, 0}, {0, 0}, 1, 0, 1};
	m.f[3] = (cm_splitfrag){1, CM_PHASE_SPLIT, {0, 1, 1}, {4, 5}, 1, 0, 1};
	m.f[4] = (cm_splitfrag){1, CM_PHASE_SERVING, {0, 2, 1}, {0, 0}, 1, 3, 1};
	m.f[5] = (cm_splitfrag){1, CM_PHASE_SERVING, {0, 2, 3}, {0, 0}, 1, 3, 0};
	id_in(id, 2, 0, 0, 1);
	TAP_EQ(cm_splitmap_route(&m, id, &f), CM_OK);
	TAP_EQ(f, 2);
	id_in(id, 2, 0, 1, 2);
	TAP_EQ(cm_splitmap_route(&m, id, &f), CM_OK);
	TAP_EQ(f, 4);
	id_in(id, 2, 0, 3, 2);
	TAP_EQ(cm_splitmap_route(&m, id, &f), CM_ERR_UNAVAILABLE); /* 5 is not live yet */
	TAP_EQ(f, 5);
	id_in(id, 2, 1, 0, 0);
	TAP_EQ(cm_splitmap_route(&m, id, &f), CM_ERR_UNAVAILABLE); /* 1 seals */
	TAP_EQ(f, 1);
	TAP_EQ(cm_splitmap_plan(&m, t, 8, &n), CM_OK);
	TAP_EQ(n, 4);
	TAP_EQ(t[0].fragment, 2);
	TAP_CHECK(!t[0].restrict_cell);
	TAP_EQ(t[1].fragment, 4);
	TAP_EQ(t[2].fragment, 3); /* 5's records are still read from its frozen parent */
	TAP_CHECK(t[2].restrict_cell && t[2].cell.depth == 2 && t[2].cell.path == 3);
	TAP_EQ(t[3].fragment, 1);
	id_in(id, 2, 0, 1, 2);    /* 4's id in 3's log: not 3's to answer */
	TAP_CHECK(!cm_split_target_keeps(&m, &t[2], id));
	id_in(id, 2, 0, 3, 2);
	TAP_CHECK(cm_split_target_keeps(&m, &t[2], id));
	TAP_EQ(cm_splitmap_plan(&m, t, 3, &n), CM_ERR_TOOBIG);
	m.f[3].phase = CM_PHASE_RETIRED; /* retired before 5 is live: 5's cell has no reader */
	TAP_EQ(cm_splitmap_plan(&m, t, 8, &n), CM_ERR_NOTFOUND);
}

int main(void)
{
	if (cm_crypto_init() != CM_OK)
		return 1;
	TAP_RUN(test_base_is_prefix_mod);
	TAP_RUN(test_halves_partition_and_spread);
	TAP_RUN(test_known_split_bits);
	TAP_RUN(test_splitmap);
	return tap_done();
}
