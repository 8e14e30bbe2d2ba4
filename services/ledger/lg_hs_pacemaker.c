/* The pacemaker of the consensus core: views, view timeouts with doubling,
 * NEW-VIEW messages and view synchronization; and why the chain keeps
 * committing after GST.
 *
 * Pacemaker (sec. 6, Algorithm 5 in spirit): a replica moves to view v+1 on
 * seeing any QC of view v. If a view's timer fires it sends NEW-VIEW(v+1,
 * highQC) to everyone (the paper sends it to the next leader; the others use
 * it to synchronize) and no longer votes below v+1. A replica enters view w
 * once n-f replicas (itself included) sent NEW-VIEW for views >= w, and joins
 * (sends its own NEW-VIEW(w)) once f+1 did, as PBFT's view change does.
 * leader(w) proposes on QC(w-1) or on n-f NEW-VIEWs >= w, with the highest QC
 * it knows. Timeouts double on each expiry up to max_timeout_ms, and drop
 * back to base_timeout_ms when a block commits. Lost NEW-VIEWs are covered
 * twice: a replica short of n-f for the view it asked for repeats its own
 * every base timeout, and one that hears NEW-VIEW(w) with w <= its view (the
 * sender lags) answers with NEW-VIEW(its view), at most once per base timeout
 * per sender.
 *
 * Liveness after GST (sec. 4.4 Theorem 4, sec. 6): after GST messages between
 * honest replicas arrive within delta and the timer resends NEW-VIEWs, so
 * once f+1 honest replicas ask for view >= w every honest one joins, and all
 * enter the highest such view within a few delta of each other. Timeouts
 * double until they exceed the few delta a view needs. An honest leader
 * entering view w has n-f NEW-VIEWs, sent after their senders' last vote
 * below w; any honest lock QC(b') comes from a QC(b'') whose >= f+1 honest
 * voters had highQC >= QC(b') before sending, and one of them is among the
 * n-f, so the leader's highQC is at least the highest honest lock and every
 * honest replica's safeNode accepts its proposal. Three consecutive views
 * with honest leaders then certify three blocks in a row (the third QC is
 * formed by its own leader, since votes also go there) and the first one
 * commits; with f < n/3 faulty replicas and round-robin leaders such runs
 * keep coming (for n = 4, one in every four views). */
#include "lg_hs_int.h"
#include "cm_bytes.h"
#include "cm_err.h"

#include <stdlib.h>
#include <string.h>

/* ---- pacemaker ---- */

void hs_enter_view(lg_hs *hs, uint64_t view)
{
	if (view <= hs->cur_view)
		return;
	hs->cur_view = view;
	hs->deadline = hs->now + timeout_now(hs);
}

void hs_send_newview(lg_hs *hs, int to, uint64_t view)
{
	lg_hs_msg m;
	uint8_t digest[CM_HASH_BYTES];
	memset(&m, 0, sizeof(m));
	m.type = LG_HS_MSG_NEWVIEW;
	m.u.newview.view = view;
	m.u.newview.high_qc = hs->high_qc;
	m.u.newview.sender = hs->cfg.self;
	lg_hs_newview_digest(digest, hs->cfg.chain, view, &hs->high_qc);
	hs->io.sign(hs->io.ctx, digest, m.u.newview.sig);
	hs->st.newviews_sent++;
	if (to == LG_HS_BROADCAST)
		hs->nv_resend_at = hs->now + hs->cfg.base_timeout_ms;
	hs->io.send(hs->io.ctx, to, &m);
}

/* The k-th highest NEW-VIEW view heard (k >= 1), counting this replica's. */
static uint64_t kth_newview(const lg_hs *hs, uint32_t k)
{
	uint64_t v[CM_CHAIN_MAX_REPLICAS];
	uint32_t n = hs->cfg.n;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t x = hs->nv_view[i];
		uint32_t j = i;
		for (; j > 0 && v[j - 1] < x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
	return v[k - 1];
}

/* View synchronization (sec. 6): join a view f+1 replicas asked for, enter
 * one n-f replicas asked for. */
void hs_pacemaker_check(lg_hs *hs)
{
	uint64_t join = kth_newview(hs, hs->cfg.f + 1);
	if (join > hs->own_nv && join > hs->cur_view) {
		hs->own_nv = join;
		hs->nv_view[hs->cfg.self] = join;
		hs_send_newview(hs, LG_HS_BROADCAST, join);
	}
	uint64_t enter = kth_newview(hs, hs->quorum);
	if (enter > hs->cur_view)
		hs_enter_view(hs, enter);
}

void hs_on_timeout(lg_hs *hs)
{
	/* Algorithm 5, onNextSyncView: tell the next leader (and, here, all) our highQC */
	hs->st.timeouts++;
	if (hs->consec < 32)
		hs->consec++;
	if (hs->own_nv <= hs->cur_view)
		hs->own_nv = hs->cur_view + 1;
	hs->nv_view[hs->cfg.self] = hs->own_nv;
	hs_send_newview(hs, LG_HS_BROADCAST, hs->own_nv);
	hs->deadline = hs->now + timeout_now(hs);
	hs_pacemaker_check(hs);
}

/* ---- NEW-VIEW (Algorithm 5 onReceiveNewView) ---- */

int hs_on_newview(lg_hs *hs, const lg_hs_newview *nv)
{
	uint8_t digest[CM_HASH_BYTES];
	if (nv->sender >= hs->cfg.n || nv->view == 0 || nv->view > CM_CHAIN_MAX_VIEW ||
	    nv->high_qc.view >= nv->view) {
		hs->st.bad_msgs++;
		return CM_ERR_INVALID;
	}
	/* NEW-VIEW(w) comes from a view below w: if w <= ours, the sender lags */
	int lagging = nv->view <= hs->cur_view && hs->now >= hs->nv_help_at[nv->sender] &&
		      nv->sender != hs->cfg.self;
	if (!lagging && nv->view <= hs->nv_view[nv->sender] && nv->high_qc.view <= hs->high_qc.view) {
		hs->st.stale_msgs++;
		return CM_ERR_STATE;
	}
	lg_hs_newview_digest(digest, hs->cfg.chain, nv->view, &nv->high_qc);
	if (hs->io.verify(hs->io.ctx, nv->sender, digest, nv->sig) != 0) {
		hs->st.bad_sigs++;
		return CM_ERR_VERIFY;
	}
	if (lagging) {
		/* the sender is behind (it missed a QC, or messages): tell it where
		 * we are, at most once per base timeout; we vote in no view below
		 * ours anyway */
		hs->nv_help_at[nv->sender] = hs->now + hs->cfg.base_timeout_ms;
		if (hs->own_nv < hs->cur_view) {
			hs->own_nv = hs->cur_view;
			hs->nv_view[hs->cfg.self] = hs->cur_view;
		}
		hs_send_newview(hs, (int)nv->sender, hs->cur_view);
	}
	int rc = hs_qc_check(hs, &nv->high_qc);
	if (rc != CM_OK) {
		hs->st.bad_sigs++;
		return rc;
	}
	if (nv->view > hs->nv_view[nv->sender])
		hs->nv_view[nv->sender] = nv->view;
	hs_process_qc(hs, &nv->high_qc);
	hs_pacemaker_check(hs);
	return CM_OK;
}
