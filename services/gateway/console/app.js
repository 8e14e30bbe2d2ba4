/* The muri console: plain JavaScript over the gateway's /api endpoints. The
 * network page polls /api/network once a second and redraws the picture,
 * the tables and Magu's face; the other pages load when shown. */
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVGNS = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;
const STALL_MS = 5000; /* a replica without a new block this long is drawn stalled */
const state = { net: null, page: "network", timer: null, colls: [],
  rec: { coll: "", cursors: [""], page: 0, next: "" } };

function short(hex) { return hex ? hex.slice(0, 8) + "…" : "—"; }
function esc(s) {
  return String(s === undefined || s === null ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
function pill(cls, text) { return `<span class="pill ${esc(cls)}">${esc(text)}</span>`; }
function nodeLink(hex) { return hex ? `<a class="mono" href="#node/${esc(hex)}" title="${esc(hex)}">${esc(short(hex))}</a>` : "—"; }

/* ---- the API key: kept in this tab's sessionStorage (never in the URL),
 * sent on every /api request as Authorization: Bearer <key> ---- */
const KEY_SLOT = "muri.apikey";
function apiKey() { try { return sessionStorage.getItem(KEY_SLOT) || ""; } catch (e) { return ""; } }
function keyStatus(text, need) {
  const s = $("#key-status");
  s.textContent = text;
  s.dataset.need = need ? "true" : "false";
}
function useKey(ev) {
  ev.preventDefault();
  const k = $("#api-key").value.trim();
  $("#api-key").value = "";
  try { if (k) sessionStorage.setItem(KEY_SLOT, k); else sessionStorage.removeItem(KEY_SLOT); } catch (e) { /* private mode */ }
  keyStatus(k ? "key set" : "no key", false);
  show();
}
function forgetKey() {
  try { sessionStorage.removeItem(KEY_SLOT); } catch (e) { /* nothing kept */ }
  keyStatus("no key", false);
  show();
}

async function api(path, opts) {
  const o = Object.assign({}, opts || {});
  const key = apiKey();
  o.headers = Object.assign({}, o.headers || {});
  if (key) o.headers.Authorization = `Bearer ${key}`;
  const r = await fetch(path, o);
  const body = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (r.status === 401) keyStatus(`API key needed: ${body.error || "HTTP 401"}`, true);
  if (!r.ok) throw Object.assign(new Error(body.error || `HTTP ${r.status}`), { status: r.status });
  if (key) keyStatus("key set", false);
  return body;
}

/* ---- routing ---- */
function show() {
  const hash = location.hash.replace(/^#/, "") || "network";
  const [page, arg] = hash.split("/");
  state.page = page;
  document.querySelectorAll(".page").forEach((s) => { s.hidden = s.id !== `page-${page}`; });
  document.querySelectorAll("nav a").forEach((a) => {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  if (page === "collections") loadCollections(arg);
  if (page === "search") loadSearchForm();
  if (page === "chain") loadChain();
  if (page === "node") loadNode(arg);
}

/* ---- network ---- */
const MOODS = {
  content: "Content: every fragment has all its replicas.",
  worried: "Worried: something is degraded or down.",
  alarmed: "Alarmed: a fragment cannot reach QUORUM, or the ledger lost its quorum!",
};

async function poll() {
  try {
    const net = await api("/api/network");
    state.net = net;
    $("#conn").textContent = `chain ${net.chain_id} · height ${net.height}`;
    drawNetwork(net);
  } catch (e) {
    $("#conn").textContent = e.status === 401 ? "the gateway wants an API key" : `console unreachable: ${e.message}`;
  }
  state.timer = setTimeout(poll, POLL_MS);
}

/* the newest commit any answering replica saw: a stalled chain shows at once */
function lastCommit(net) {
  const ms = net.ledgers.filter((l) => l.up && l.since_commit_ms !== undefined).map((l) => l.since_commit_ms);
  return ms.length ? `${(Math.min(...ms) / 1000).toFixed(1)} s ago` : "unknown";
}

function fact(dt, dd) { return `<div><dt>${esc(dt)}</dt><dd>${esc(dd)}</dd></div>`; }

function drawNetwork(net) {
  const h = net.health;
  $("#magu").dataset.mood = h.mood;
  const svg = $("#magu svg");
  if (svg) svg.setAttribute("data-mood", h.mood);
  $("#mood-text").textContent = MOODS[h.mood] || h.mood;
  const ixUp = net.indexers.filter((x) => x.up).length;
  $("#facts").innerHTML = fact("height", net.height) +
    fact("leader", net.leader >= 0 ? `replica ${net.leader}` : "none") +
    fact("ledgers up", `${h.ledgers_up} / ${h.ledgers}`) +
    fact("indexers up", `${ixUp} / ${net.indexers.length}`) +
    fact("fragments ok", `${h.fragments_ok} / ${h.fragments_ok + h.fragments_degraded + h.fragments_lost}`) +
    fact("last commit", lastCommit(net));
  drawPicture(net);
  drawNodeTable(net);
  drawFragTable(net);
}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}

function polar(cx, cy, r, a) { return [cx + r * Math.cos(a), cy + r * Math.sin(a)]; }

function star(cx, cy, r) {
  const pts = [];
  for (let i = 0; i < 10; i++) {
    const a = -Math.PI / 2 + i * Math.PI / 5, rr = i % 2 ? r * 0.45 : r;
    pts.push(polar(cx, cy, rr, a).map((v) => v.toFixed(1)).join(","));
  }
  return pts.join(" ");
}

function nodeGroup(parent, x, role, hex, up, label) {
  const g = el("g", { class: `node ${role} ${up ? "up" : "down"}`, "data-node": hex || "", "data-role": role,
    tabindex: "0", role: "link", "aria-label": `${role} ${short(hex)} ${up ? "up" : "down"}` }, parent);
  el("title", {}, g).textContent = `${role} ${hex || ""} ${up ? "up" : "DOWN"}`;
  g.addEventListener("click", () => { if (hex) location.hash = `#node/${hex}`; });
  g.addEventListener("keydown", (e) => { if (e.key === "Enter" && hex) location.hash = `#node/${hex}`; });
  return g;
}

function drawPicture(net) {
  const svg = $("#picture");
  [...svg.querySelectorAll("g.layer")].forEach((g) => g.remove());
  const cx = 400, cy = 300;
  const layer = el("g", { class: "layer" }, svg);
  el("circle", { class: "ring", cx, cy, r: 150 }, layer);
  el("circle", { class: "ring", cx, cy, r: 250 }, layer);
  const links = el("g", {}, layer), arcs = el("g", {}, layer), nodes = el("g", {}, layer);
  /* indexers on the outer ring */
  const ixPos = {};
  net.indexers.forEach((x, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(1, net.indexers.length);
    ixPos[x.node] = polar(cx, cy, 250, a);
  });
  /* fragments as arcs of the inner ring */
  const frags = net.fragments, nf = Math.max(1, frags.length), gap = frags.length > 1 ? 0.04 : 0;
  frags.forEach((f, i) => {
    const a0 = -Math.PI / 2 + (2 * Math.PI * i) / nf + gap, a1 = -Math.PI / 2 + (2 * Math.PI * (i + 1)) / nf - gap;
    const [x0, y0] = polar(cx, cy, 150, a0), [x1, y1] = polar(cx, cy, 150, a1);
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const p = el("path", { class: `arc ${f.state}`, d: frags.length === 1 ?
      `M ${cx} ${cy - 150} A 150 150 0 1 1 ${cx - 0.01} ${cy - 150}` :
      `M ${x0} ${y0} A 150 150 0 ${large} 1 ${x1} ${y1}`, "data-fragment": `${f.collection}/${f.fragment}` }, arcs);
    el("title", {}, p).textContent = `${f.collection} fragment ${f.fragment}: ${f.state}, epoch ${f.epoch}, ${f.up}/${f.replicas.length} replicas up`;
    const am = (a0 + a1) / 2, [lx, ly] = polar(cx, cy, 126, am);
    const t = el("text", { class: "label", x: lx, y: ly + 4, "text-anchor": "middle" }, arcs);
    t.textContent = `${f.collection}/${f.fragment}`;
    f.replicas.forEach((pk, ri) => {
      const to = ixPos[pk];
      if (!to) return;
      const ix = net.indexers.find((x) => x.node === pk);
      const role = pk === f.primary ? "primary" : "backup";
      /* out from the arc, round the band between the rings, in to the indexer */
      const ai = Math.atan2(to[1] - cy, to[0] - cx);
      let delta = ai - am;
      while (delta > Math.PI) delta -= 2 * Math.PI;
      while (delta <= -Math.PI) delta += 2 * Math.PI;
      const rr = 178 + 14 * ri + 4 * (i % 3);
      const [sx, sy] = polar(cx, cy, 158, am), [p1x, p1y] = polar(cx, cy, rr, am), [p2x, p2y] = polar(cx, cy, rr, ai);
      el("path", { class: `link ${role} ${ix && !ix.up ? "down" : ""}`,
        d: `M ${sx} ${sy} L ${p1x} ${p1y} A ${rr} ${rr} 0 0 ${delta > 0 ? 1 : 0} ${p2x} ${p2y} L ${to[0]} ${to[1]}` }, links);
    });
  });
  net.indexers.forEach((x) => {
    const [px, py] = ixPos[x.node];
    const g = nodeGroup(nodes, x, "indexer", x.node, x.up);
    el("circle", { cx: px, cy: py, r: 22 }, g);
    const t = el("text", { x: px, y: py + 4 }, g);
    t.textContent = short(x.node).slice(0, 6);
    const t2 = el("text", { x: px, y: py + 38 }, g);
    t2.textContent = x.up ? `${x.fragments.length} frag` : "DOWN";
    /* who lied: proven lies in the gateway's merges, failed challenges, jailed */
    const lies = x.rank ? x.rank.lies : 0;
    if (lies > 0 || x.challenges_failed > 0 || x.jailed) {
      g.classList.add("liar");
      const b = el("g", { class: "badge" }, g);
      el("circle", { cx: px + 18, cy: py - 18, r: 9 }, b);
      const bt = el("text", { x: px + 18, y: py - 14 }, b);
      bt.textContent = "!";
      el("title", {}, b).textContent = `${lies} proven lies, ${x.challenges_failed} failed challenges${x.jailed ? ", jailed" : ""}`;
      g.setAttribute("aria-label", `${g.getAttribute("aria-label")}, caught lying or failing challenges`);
    }
  });
  /* ledger replicas in the centre, the leader starred */
  const nl = Math.max(1, net.ledgers.length);
  net.ledgers.forEach((l, i) => {
    const [px, py] = polar(cx, cy, nl > 1 ? 62 : 0, -Math.PI / 2 + (2 * Math.PI * i) / nl);
    const g = nodeGroup(nodes, l, "ledger", l.node, l.up);
    if (l.up && l.since_commit_ms > STALL_MS) g.classList.add("stalled");
    el("rect", { x: px - 20, y: py - 16, width: 40, height: 32, rx: 6 }, g);
    const t = el("text", { x: px, y: py + 4 }, g);
    t.textContent = `L${l.index}`;
    if (l.leader) el("polygon", { class: "star", points: star(px + 20, py - 16, 10) }, g);
  });
  const tl = el("text", { class: "label", x: cx, y: cy + 104, "text-anchor": "middle" }, layer);
  tl.textContent = `ledger · height ${net.height}`;
  /* the gateway, top left, joined to the ledger it follows */
  /* this gateway first; the genesis's others below it, grey: no address to ask */
  net.gateways.forEach((gw, i) => {
    const y = 46 + 62 * i;
    el("path", { class: `link${gw.self ? "" : " backup"}`, d: `M 90 ${y + 24} Q 200 ${y + 74} ${cx - 40} ${cy - 40}` }, links);
    const g = nodeGroup(nodes, gw, "gateway", gw.node, gw.self || gw.up);
    if (!gw.self) {
      g.classList.replace("down", "unknown");
      g.setAttribute("aria-label", `gateway ${short(gw.node)} health unknown`);
      g.querySelector("title").textContent = `gateway ${gw.node} (genesis; health unknown)`;
    }
    el("rect", { x: 40, y, width: 100, height: 48, rx: 10 }, g);
    const t = el("text", { x: 90, y: y + 29 }, g);
    t.textContent = gw.self ? "gateway" : `gw ${short(gw.node)}`;
  });
}

function challengeText(c) { return c && c.id ? `#${c.id} ${c.result}` : "none"; }

function drawNodeTable(net) {
  const rows = [];
  net.ledgers.forEach((l) => rows.push(`<tr data-role="ledger" data-node="${esc(l.node)}" data-up="${l.up}">
    <td>ledger${l.leader ? " " + pill("leader", "leader") : ""}</td><td>${nodeLink(l.node)}</td><td class="mono">${esc(l.addr)}</td>
    <td>${pill(l.up ? "up" : "down", l.up ? "up" : "down")}</td>
    <td>height ${esc(l.height)} · view ${esc(l.view)}${l.since_commit_ms !== undefined ? ` · last commit ${(l.since_commit_ms / 1000).toFixed(1)} s ago` : ""}${l.error ? ` · <span class="err">${esc(l.error)}</span>` : ""}</td></tr>`));
  net.indexers.forEach((x) => {
    const prim = x.fragments.filter((f) => f.role === "primary").length;
    const lease = x.lease && x.lease.primaries ? ` · lease held on ${x.lease.held} of ${x.lease.primaries} primar${x.lease.primaries === 1 ? "y" : "ies"} (${x.lease.lease_ms} ms)${x.lease.held < x.lease.primaries ? " " + pill("degraded", "lease lapsed") : ""}` : "";
    const rank = x.rank ? ` · rank score ${x.rank.score.toFixed(2)}, ${x.rank.latency_ms.toFixed(1)} ms, lies ${x.rank.lies}` : "";
    rows.push(`<tr data-role="indexer" data-node="${esc(x.node)}" data-addr="${esc(x.addr)}" data-up="${x.up}">
    <td>indexer</td><td>${nodeLink(x.node)}</td><td class="mono">${esc(x.addr)}</td>
    <td>${pill(x.up ? "up" : "down", x.up ? "up" : "down")}${x.jailed ? " " + pill("failed", "jailed") : ""}</td>
    <td>stake ${esc(x.stake)} · fragments ${x.fragments.length} (${prim} primary)${lease} · last challenge ${pill(x.last_challenge.result, challengeText(x.last_challenge))}${rank}${x.error ? ` · <span class="err">${esc(x.error)}</span>` : ""}</td></tr>`);
  });
  net.gateways.forEach((g) => {
    const settle = g.last_settle_height ? `last receipts settled at height ${g.last_settle_height}` +
      (g.blocks_since_settle !== undefined ? ` (${g.blocks_since_settle} blocks ago)` : "") : "no receipts settled yet";
    rows.push(`<tr data-role="gateway" data-node="${esc(g.node || "")}" data-up="${g.self ? "true" : "unknown"}">
    <td>gateway</td><td>${nodeLink(g.node)}</td><td class="mono">${g.self ? `rpc port ${esc(g.rpc_port)}` : "not in genesis"}</td>
    <td>${g.self ? pill("up", "up") : pill("none", "unknown")}</td>
    <td>${g.self ? "this console's gateway" : "listed in genesis (key only: no address to ask)"}${g.self && !g.in_genesis ? " · not listed in genesis" : ""} · ${esc(settle)}</td></tr>`);
  });
  $("#nodes-table tbody").innerHTML = rows.join("");
}

function drawFragTable(net) {
  $("#frags-table tbody").innerHTML = net.fragments.map((f) => `<tr data-state="${esc(f.state)}">
    <td>${esc(f.collection)}</td><td>${f.fragment}</td><td>${f.epoch}</td><td>${pill(f.state, f.state)}</td>
    <td>${nodeLink(f.primary)}</td><td>${f.up} / ${f.replicas.length}</td></tr>`).join("");
}

/* ---- collections ---- */
async function loadCollections(name) {
  try {
    const r = await api("/api/collections");
    state.colls = r.collections;
    $("#colls-table tbody").innerHTML = r.collections.map((c) => `<tr>
      <th scope="row"><a href="#collections/${encodeURIComponent(c.name)}">${esc(c.name)}</a></th><td>${c.dimension}</td>
      <td>${esc(c.metric)}</td><td>${esc(c.index)}</td><td>${c.fragments}</td><td>${c.replication}</td><td>${c.log_records}</td><td>${c.committed_records}</td></tr>`).join("");
    if (name) {
      const c = await api(`/api/collections/${name}`);
      $("#coll-detail").innerHTML = `<h2 id="h-coll">${esc(c.name)}: fragments</h2><div class="table-wrap"><table aria-labelledby="h-coll">
        <thead><tr><th scope="col">Fragment</th><th scope="col">Epoch</th><th scope="col">State</th><th scope="col">Replicas</th><th scope="col">Log (acked here)</th><th scope="col">Committed size</th><th scope="col">Committed root</th></tr></thead><tbody>` +
        c.fragment_list.map((f) => `<tr><td>${f.fragment}</td><td>${f.epoch}</td><td>${pill(f.state, f.state)}</td>
          <td>${f.replicas.map((r) => `${nodeLink(r.node)} ${pill(r.role, r.role)} ${pill(r.up ? "up" : "down", r.up ? "up" : "down")}`).join("<br>")}</td>
          <td>${f.acked_size}</td><td>${f.committed_size}</td><td class="mono">${esc(f.committed_root || "—")}</td></tr>`).join("") + "</tbody></table></div>";
      $("#records").hidden = false;
      if (state.rec.coll !== c.name) {
        state.rec = { coll: c.name, cursors: [""], page: 0, next: "" };
        $("#r-caption").textContent = `Records of ${c.name}`;
        loadRecords();
      }
    } else {
      $("#coll-detail").innerHTML = "";
      $("#records").hidden = true;
      state.rec.coll = "";
    }
  } catch (e) {
    $("#coll-detail").innerHTML = `<p class="err">${esc(e.message)}</p>`;
  }
}

/* The data browser: one page of the collection's records (the gateway's
 * Scroll), Previous and Next walking the cursors it returned. */
function vectorText(v) {
  if (!v) return "—";
  const head = v.slice(0, 6).map((x) => Number(x).toPrecision(4)).join(", ");
  return `[${head}${v.length > 6 ? ", …" : ""}] (${v.length})`;
}

async function loadRecords() {
  const rec = state.rec;
  const q = new URLSearchParams({ limit: $("#r-limit").value });
  if (rec.cursors[rec.page]) q.set("cursor", rec.cursors[rec.page]);
  if ($("#r-vectors").checked) q.set("vectors", "1");
  const filter = $("#r-filter").value.trim();
  if (filter) q.set("filter", filter);
  $("#r-status").textContent = "loading…";
  $("#r-prev").disabled = $("#r-next").disabled = true;
  try {
    const r = await api(`/api/collections/${encodeURIComponent(rec.coll)}/records?${q}`);
    if (rec !== state.rec) return; /* another collection was opened meanwhile */
    const base = rec.page * Number($("#r-limit").value);
    $("#records-table tbody").innerHTML = r.records.map((x, i) => `<tr data-id="${esc(x.id)}">
      <td>${base + i + 1}</td><th scope="row" class="mono">${esc(x.id)}</th><td>${esc(x.version)}</td>
      <td class="mono" data-metadata="${esc(JSON.stringify(x.metadata || {}))}">${esc(JSON.stringify(x.metadata || {}))}</td>
      <td class="mono vec"${x.vector ? ` data-vector="${esc(JSON.stringify(x.vector))}" title="${esc(x.vector.join(", "))}"` : ""}>${esc(vectorText(x.vector))}</td></tr>`).join("") ||
      `<tr><td colspan="5">no records on this page</td></tr>`;
    rec.next = r.next_cursor;
    $("#r-page").textContent = `page ${rec.page + 1}${r.next_cursor ? "" : " (last)"}`;
    $("#r-status").textContent = `${r.records.length} record${r.records.length === 1 ? "" : "s"}`;
    $("#r-prev").disabled = rec.page === 0;
    $("#r-next").disabled = !r.next_cursor;
  } catch (e) {
    $("#r-status").innerHTML = `<span class="err">${esc(e.message)}</span>`;
    $("#r-prev").disabled = rec.page === 0;
  }
}

function recordsFirst(ev) {
  if (ev) ev.preventDefault();
  state.rec.cursors = [""];
  state.rec.page = 0;
  loadRecords();
}

function recordsNext() {
  const rec = state.rec;
  if (!rec.next) return;
  rec.cursors[rec.page + 1] = rec.next;
  rec.page++;
  loadRecords();
}

function recordsPrev() {
  if (state.rec.page === 0) return;
  state.rec.page--;
  loadRecords();
}

/* ---- search ---- */
async function loadSearchForm() {
  try {
    const r = await api("/api/collections");
    const sel = $("#s-collection"), cur = sel.value;
    sel.innerHTML = r.collections.map((c) => `<option>${esc(c.name)}</option>`).join("");
    if (cur) sel.value = cur;
  } catch (e) {
    $("#s-status").textContent = e.message;
  }
}

async function runSearch(ev) {
  ev.preventDefault();
  const body = { collection: $("#s-collection").value, consistency: $("#s-level").value, top_k: parseInt($("#s-k").value, 10) || 10 };
  const st = $("#s-status");
  try {
    const v = $("#s-vector").value.trim(), id = $("#s-id").value.trim(), f = $("#s-filter").value.trim();
    if (v) body.vector = JSON.parse(v); else if (id) body.id = id;
    if (f) body.filter = JSON.parse(f);
  } catch (e) {
    st.innerHTML = `<span class="err">not JSON: ${esc(e.message)}</span>`;
    return;
  }
  st.textContent = "searching…";
  try {
    const r = await api("/api/search", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const m = r.metrics || {};
    st.textContent = `${r.results.length} hits in ${m.time_ms !== undefined ? m.time_ms.toFixed(1) : "?"} ms · ${m.nodes_answered}/${m.nodes_queried} replicas answered · level ${m.level}`;
    $("#hits-table tbody").innerHTML = r.results.map((h, i) => `<tr data-id="${esc(h.id)}"><td>${i + 1}</td><td class="mono">${esc(h.id)}</td>
      <td>${h.distance.toFixed(5)}</td><td class="mono">${esc(JSON.stringify(h.metadata))}</td></tr>`).join("");
    $("#answer-nodes tbody").innerHTML = r.nodes.map((n) => `<tr data-answered="${n.answered}"><td>${n.rank || "—"}</td><td>${nodeLink(n.node)}</td>
      <td>${n.fragment}</td><td>${pill(n.answered ? "up" : "none", n.answered ? "yes" : "no")}</td><td>${n.answered ? n.latency_ms : "—"}</td>
      <td>${n.answered ? `${n.contributed} / ${n.expected}` : "—"}</td><td>${n.answered ? n.lies : "—"}</td></tr>`).join("");
  } catch (e) {
    st.innerHTML = `<span class="err">${esc(e.message)}</span>`;
  }
}

/* ---- chain ---- */
async function loadChain() {
  try {
    const r = await api("/api/blocks?limit=20");
    $("#blocks-table tbody").innerHTML = r.blocks.map((b) => {
      const txs = b.txs.map((t) => `${esc(t.kind)}${t.receipts ? ` (${t.receipts} receipts)` : ""} ${pill(t.state || "none", t.state || "?")}${t.state === "failed" ? ` <span class="err">${esc(t.message)}</span>` : ""}`).join("<br>") || "—";
      const ch = b.challenges_issued.map((c) => `#${c.id} ${esc(c.collection)}/${c.fragment} → ${nodeLink(c.indexer)} issued`)
        .concat(b.challenges_decided.map((c) => `#${c.id} ${nodeLink(c.indexer)} ${pill(c.state, c.state)}`)).join("<br>") || "—";
      const sl = b.penalties.map((p) => `${nodeLink(p.indexer)} −${p.slashed}${p.jailed ? " jailed" : ""}: ${esc(p.reason)}`).join("<br>") || "—";
      return `<tr><th scope="row">${b.height}</th><td>${b.view}</td><td>${nodeLink(b.proposer)}</td><td>${txs}</td><td>${ch}</td><td>${sl}</td></tr>`;
    }).join("");
    $("#receipts-table tbody").innerHTML = r.receipts.map((x) => `<tr><td>${x.height}</td><td>${esc(x.collection)}</td><td>${x.fee}</td>
      <td>${x.payouts.map((p) => `${nodeLink(p.node)} ${p.amount}`).join("<br>")}</td></tr>`).join("");
  } catch (e) {
    $("#blocks-table tbody").innerHTML = `<tr><td colspan="6" class="err">${esc(e.message)}</td></tr>`;
  }
}

async function loadNode(hex) {
  const d = $("#node-detail");
  try {
    const n = await api(`/api/nodes/${hex}`);
    const rows = [["Public key", `<span class="mono">${esc(n.node)}</span>`], ["Role", esc(n.role)]];
    if (n.addr) rows.push(["Address", `<span class="mono">${esc(n.addr)}</span>`]);
    if (n.up !== undefined) rows.push(["State", pill(n.up ? "up" : "down", n.up ? "up" : "down")]);
    if (n.account) rows.push(["Balance", n.account.balance], ["Staked", n.account.staked]);
    if (n.indexer) rows.push(["Stake", n.indexer.stake], ["Failures", n.indexer.failures], ["Jailed", n.indexer.jailed ? "yes" : "no"]);
    if (n.earned !== undefined) rows.push(["Earned", `${n.earned} over ${n.receipts_paid} receipts`]);
    let html = `<div class="table-wrap"><table aria-label="Node record"><tbody>${rows.map(([k, v]) => `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join("")}</tbody></table></div>`;
    if (n.challenges) {
      html += `<h2 id="h-nch">Challenges</h2><div class="table-wrap"><table aria-labelledby="h-nch"><thead><tr><th scope="col">Id</th><th scope="col">Fragment</th><th scope="col">Issued</th><th scope="col">Outcome</th></tr></thead><tbody>` +
        (n.challenges.map((c) => `<tr><td>${c.id}</td><td>${esc(c.collection)}/${c.fragment}</td><td>${c.issued_height}</td><td>${pill(c.state, c.state)}</td></tr>`).join("") ||
          `<tr><td colspan="4">none yet</td></tr>`) + "</tbody></table></div>";
    }
    d.innerHTML = html;
  } catch (e) {
    d.innerHTML = `<p class="err">${esc(e.message)}</p>`;
  }
}

async function init() {
  try {
    const text = await (await fetch("/magu.svg")).text();
    $("#magu").innerHTML = text.replace(/<\?xml[^>]*>/, "");
  } catch (e) { /* the page works without the mascot */ }
  $("#search-form").addEventListener("submit", runSearch);
  $("#key-form").addEventListener("submit", useKey);
  $("#key-forget").addEventListener("click", forgetKey);
  keyStatus(apiKey() ? "key set" : "no key", false);
  $("#records-form").addEventListener("submit", recordsFirst);
  $("#r-next").addEventListener("click", recordsNext);
  $("#r-prev").addEventListener("click", recordsPrev);
  window.addEventListener("hashchange", show);
  show();
  poll();
}

init();
