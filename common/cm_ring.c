/* Weighted rendezvous hashing (Thaler and Ravishankar's highest random weight,
 * with the weighted score w / -ln(u) of Schindelhauer and Schomaker) computed
 * with integers only: -log2(u) in 32.32 fixed point by repeated squaring, and
 * scores compared by 128-bit cross-multiplication. No floating point, no libm,
 * no dependence on byte order: the same placement on every machine. */
#include "cm_ring.h"
#include "cm_err.h"

#include <sodium.h>
#include <string.h>

#define KEY_TAG "muri.ring.key.v1" /* domain of the key digest */
#define KEY_TAG_BYTES 16
#define DRAW_KEY_BYTES crypto_shorthash_siphash24_KEYBYTES /* 16 */
#define DRAW_BYTES crypto_shorthash_siphash24_BYTES        /* 8 */
#define LOG_FRAC_BITS 32 /* fractional bits of the fixed-point log */
#define U_BITS 63        /* u = t / 2^63 with t in [1, 2^63] */

/* A node's draw for one key: x = -log2(u) as a fixed-point number, 0 <= x <= 63. */
typedef struct draw {
	size_t index;
	uint64_t weight;
	uint64_t x;
} draw;

/* 64 x 64 -> 128-bit product as (hi, lo): exact, so the compiler's 128-bit
 * type and the portable schoolbook form give the same bits. */
#if defined(__SIZEOF_INT128__) && !defined(CM_RING_PORTABLE_MUL)
__extension__ typedef unsigned __int128 u128;

static void mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
	u128 p = (u128)a * b;
	*hi = (uint64_t)(p >> 64);
	*lo = (uint64_t)p;
}
#else
static void mul64(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
	const uint64_t m32 = 0xffffffffu;
	uint64_t a0 = a & m32, a1 = a >> 32, b0 = b & m32, b1 = b >> 32;
	uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
	uint64_t mid = (p00 >> 32) + (p01 & m32) + (p10 & m32);
	*lo = (mid << 32) | (p00 & m32);
	*hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
}
#endif

/* log2(t) for t >= 1 in fixed point with LOG_FRAC_BITS fractional bits,
 * rounded down at every step: deterministic, and within 2^-31 of exact.
 * The integer part is the position of the top bit; each fractional bit comes
 * from squaring the mantissa m in [1, 2): if m^2 >= 2 the bit is 1 and m^2 is
 * halved. The mantissa is held as m * 2^62. */
static uint64_t log2_fixed(uint64_t t)
{
	unsigned e = 0;
	uint64_t m, hi, lo, res;

	while (e < 63 && (t >> (e + 1)))
		e++;
	m = e <= 62 ? t << (62 - e) : t >> (e - 62);
	res = (uint64_t)e << LOG_FRAC_BITS;
	for (int bit = LOG_FRAC_BITS - 1; bit >= 0; bit--) {
		mul64(m, m, &hi, &lo);
		m = (hi << 2) | (lo >> 62); /* m^2 * 2^62, in [2^62, 2^64) */
		uint64_t one = m >> 63;     /* branch-free: the bits are coin flips */
		m >>= one;
		res |= one << bit;
	}
	return res;
}

/* The node's uniform 64-bit draw for the key: SipHash-2-4 of the node's id
 * keyed by the key's digest, read little-endian. */
static uint64_t node_draw(const uint8_t kd[DRAW_KEY_BYTES], const uint8_t id[CM_RING_ID_BYTES])
{
	uint8_t out[DRAW_BYTES];
	uint64_t v = 0;

	crypto_shorthash_siphash24(out, id, CM_RING_ID_BYTES, kd);
	for (int i = DRAW_BYTES - 1; i >= 0; i--)
		v = v << 8 | out[i];
	return v;
}

/* -log2(u) with u = t / 2^63, t = top 63 bits of the hash + 1. */
static uint64_t neg_log2_u(uint64_t h)
{
	uint64_t t = (h >> 1) + 1;
	return ((uint64_t)U_BITS << LOG_FRAC_BITS) - log2_fixed(t);
}

/* 1 if a ranks before b: a higher w / x, i.e. w_a * x_b > w_b * x_a (x = 0
 * is an infinite score); on equal scores the lower id, then the lower index. */
static int ranks_before(const draw *a, const draw *b, const cm_ring_node *nodes)
{
	uint64_t ah, al, bh, bl;
	mul64(a->weight, b->x, &ah, &al);
	mul64(b->weight, a->x, &bh, &bl);
	if (ah != bh)
		return ah > bh;
	if (al != bl)
		return al > bl;
	int c = memcmp(nodes[a->index].id, nodes[b->index].id, CM_RING_ID_BYTES);
	if (c != 0)
		return c < 0;
	return a->index < b->index;
}

int cm_ring_place(const cm_ring_node *nodes, size_t n, const void *key, size_t key_len,
		  size_t r, size_t *out, size_t *count)
{
	draw best[CM_RING_MAX_R];
	uint8_t kd[DRAW_KEY_BYTES];
	crypto_generichash_state st;
	size_t have = 0;

	if (r == 0 || r > CM_RING_MAX_R || !out || !count || (n && !nodes) || (key_len && !key))
		return CM_ERR_INVALID;
	crypto_generichash_init(&st, NULL, 0, sizeof(kd));
	crypto_generichash_update(&st, (const uint8_t *)KEY_TAG, KEY_TAG_BYTES);
	if (key_len)
		crypto_generichash_update(&st, key, key_len);
	crypto_generichash_final(&st, kd, sizeof(kd));

	for (size_t i = 0; i < n; i++) {
		if (nodes[i].weight == 0)
			continue;
		draw d = {i, nodes[i].weight, neg_log2_u(node_draw(kd, nodes[i].id))};
		if (have == r && !ranks_before(&d, &best[r - 1], nodes))
			continue;
		/* insert d into best[0..have), kept in rank order, dropping the last if full */
		size_t pos = have < r ? have : r - 1;
		while (pos > 0 && ranks_before(&d, &best[pos - 1], nodes)) {
			best[pos] = best[pos - 1];
			pos--;
		}
		best[pos] = d;
		if (have < r)
			have++;
	}
	for (size_t i = 0; i < have; i++)
		out[i] = best[i].index;
	*count = have;
	return CM_OK;
}
