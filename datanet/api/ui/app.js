// datanet dashboard. Vanilla JS, no dependencies. Every figure comes from the
// node's /api/v0 operations, called with the bearer token kept in sessionStorage.
// Data is only ever put in the page as text (textContent / text nodes), never as HTML.
"use strict";

const API = "/api/v0/";
const TOKEN_KEY = "datanet.token";
const REFRESH_MS = 5000;
const FACETS = ["org", "access", "keyword", "theme", "license", "media_type"];
const MAX_LIVE = 50;

const state = { filters: {}, timer: null, watch: null };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

function fill(dl, pairs) {
  clear(dl);
  for (const [k, v] of pairs) {
    if (v === null || v === undefined || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", { "data-field": k }, Array.isArray(v) ? v.join(", ") : v));
  }
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function short(id) { return id && id.length > 20 ? id.slice(0, 12) + "…" + id.slice(-6) : id || ""; }

class ApiError extends Error {
  constructor(status, code, message) { super(`${code}: ${message}`); this.status = status; this.code = code; }
}

async function api(path, body, token) {
  const response = await fetch(API + path, {
    method: "POST",
    headers: { "Authorization": "Bearer " + (token || sessionStorage.getItem(TOKEN_KEY) || ""),
               "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
    cache: "no-store",
  });
  let doc = null;
  try { doc = await response.json(); } catch (e) { doc = null; }
  if (!response.ok) {
    const err = (doc && doc.error) || { code: "http_error", message: "HTTP " + response.status };
    const error = new ApiError(response.status, err.code, err.message);
    if (response.status === 401 && !token) logout("The node refused the token (401): log in again.");
    throw error;
  }
  return doc;
}

function showError(e) { $("error").textContent = e ? String(e.message || e) : ""; }

// --- login ------------------------------------------------------------------------

async function login(event) {
  event.preventDefault();
  const token = $("token").value.trim();
  $("login-error").textContent = "";
  if (!token) { $("login-error").textContent = "Enter the API token."; return; }
  try {
    await api("id", {}, token);
  } catch (e) {
    $("login-error").textContent = e.status === 401
      ? "Wrong token: the node refused it (401 unauthorized). Copy it again from <data dir>/api.token."
      : "Could not reach the node: " + e.message;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  start();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopLive();
  $("nav").hidden = true;
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "view-login";
  $("login-error").textContent = message || "";
  $("live-state").textContent = "";
}

function start() {
  $("nav").hidden = false;
  startLive();
  if (!location.hash || location.hash === "#/login") location.hash = "#/overview";
  route();
}

// --- views ------------------------------------------------------------------------

function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) { logout(""); return; }
  const hash = location.hash.replace(/^#\/?/, "");
  const [name, ...rest] = hash.split("/");
  const view = ["overview", "search", "dataset", "requests", "audit"].includes(name) ? name : "overview";
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== "view-" + view;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === view);
  showError(null);
  clearInterval(state.timer);
  const load = {
    overview: loadOverview,
    search: loadSearch,
    dataset: () => loadDataset(decodeURIComponent(rest.join("/"))),
    requests: loadRequests,
    audit: loadAudit,
  }[view];
  load().catch(showError);
  if (view === "overview" || view === "requests" || view === "audit") {
    state.timer = setInterval(() => load().catch(showError), REFRESH_MS);
  }
}

async function loadOverview() {
  const [id, status, peers, routing] = await Promise.all([
    api("id"), api("node/status"), api("peers"), api("routing/stats"),
  ]);
  const node = status.node || {};
  fill($("identity"), [
    ["peer id", id.peer_id],
    ["organization", id.org || "no certificate installed"],
    ["admission", node.admission],
    ["agent", id.agent],
    ["version", status.version],
    ["uptime", Math.round(status.uptime_s) + " s"],
    ["addresses", id.addrs],
    ["catalog", node.catalog_size !== undefined ? node.catalog_size + " datasets" : null],
    ["own datasets", node.own_descriptors],
  ]);
  const cert = node.certificate;
  fill($("certificate"), cert ? [
    ["organization", cert.org_name ? `${cert.org_name} (${cert.org})` : cert.org],
    ["serial", cert.serial],
    ["roles", cert.roles.join(", ")],
    ["valid from", when(cert.not_before)],
    ["valid until", when(cert.not_after)],
  ] : [["certificate", "none installed: the node is not a member of any organization"]]);
  const body = clear($("peers").tBodies[0]);
  $("peer-count").textContent = "(" + peers.peers.length + ")";
  for (const p of peers.peers) {
    body.append(el("tr", {},
      el("td", { class: "mono", title: p.peer_id }, short(p.peer_id)),
      el("td", { class: "mono", title: p.org || "" }, p.org ? short(p.org) : "—"),
      el("td", {}, p.org ? "certificate verified" : "not admitted"),
      el("td", {}, p.latency_ms === null ? "—" : p.latency_ms.toFixed(1) + " ms"),
      el("td", { class: "mono" }, p.addrs.join(" "))));
  }
  const stats = routing.stats || {};
  fill($("routing"), Object.entries(stats).map(([k, v]) => [k.replace(/_/g, " "),
    typeof v === "object" && v !== null ? JSON.stringify(v) : v]));
}

async function loadSearch() {
  const body = { query: $("q").value.trim(), limit: 50, facets: true };
  for (const [name, values] of Object.entries(state.filters)) if (values.length) body[name] = values;
  const page = await api("search", body);
  $("search-summary").textContent = `${page.total} dataset(s)` +
    (Object.values(state.filters).some((v) => v.length) ? " (filtered)" : "");
  const hits = clear($("hits"));
  for (const h of page.hits) {
    hits.append(el("li", { "data-id": h.dataset_id },
      el("a", { href: "#/dataset/" + encodeURIComponent(h.dataset_id) }, h.title),
      el("div", { class: "mono muted" }, h.dataset_id),
      el("div", {}, h.description || ""),
      el("div", {}, el("span", { class: "tag" }, h.access), ...(h.keywords || []).map((k) => el("span", { class: "tag" }, k)))));
  }
  const facets = clear($("facets"));
  for (const name of FACETS) {
    const values = (page.facets || {})[name] || [];
    if (!values.length) continue;
    facets.append(el("h4", {}, name.replace("_", " ")));
    for (const { value, count } of values) {
      const on = (state.filters[name] || []).includes(value);
      facets.append(el("button", {
        type: "button", class: on ? "on" : "", "data-facet": name, "data-value": value, title: value,
        onclick: () => toggleFacet(name, value),
      }, `${name === "org" ? short(value) : value} (${count})`));
    }
  }
}

function toggleFacet(name, value) {
  const values = state.filters[name] || [];
  state.filters[name] = values.includes(value) ? values.filter((v) => v !== value) : [...values, value];
  loadSearch().catch(showError);
}

async function loadDataset(id) {
  for (const x of ["ds-title", "ds-id"]) $(x).textContent = "";
  const resolved = await api("resolve", { id });
  const d = resolved.descriptor;
  $("ds-title").textContent = d.title || id;
  $("ds-id").textContent = resolved.dataset_id;
  const policy = d.access_policy || {};
  fill($("ds-fields"), [
    ["description", d.description],
    ["organization", resolved.certificate.org_name + " (" + resolved.certificate.org + ")"],
    ["publishing node", d.publisher_node],
    ["sequence", resolved.sequence],
    ["version", d.version],
    ["license", d.license],
    ["keywords", d.keywords],
    ["themes", d.themes],
    ["schema", d.schema],
    ["spatial", d.spatial],
    ["issued", when(d.issued)],
    ["modified", when(d.modified)],
    ["expires", when(d.expires)],
    ["temporal", d.temporal ? when(d.temporal.start) + " – " + when(d.temporal.end) : null],
    ["access", policy.mode],
    ["purposes", policy.purposes],
    ["max validity", policy.max_validity_days ? policy.max_validity_days + " days" : null],
  ]);
  const dists = clear($("ds-distributions").tBodies[0]);
  for (const x of d.distributions || []) {
    dists.append(el("tr", {}, el("td", {}, x.title || ""), el("td", {}, x.media_type || ""),
      el("td", { class: "mono" }, x.access || ""), el("td", {}, x.byte_size === undefined || x.byte_size === null ? "" : String(x.byte_size))));
  }
  fill($("ds-cert"), [
    ["organization", resolved.certificate.org_name],
    ["node", resolved.certificate.node],
    ["roles", resolved.certificate.roles],
    ["serial", resolved.certificate.serial],
    ["valid", when(resolved.certificate.not_before) + " – " + when(resolved.certificate.not_after)],
  ]);
  const [dcat, provs, reps] = await Promise.allSettled([
    api("dcat", { id }), api("routing/findprovs", { key: id }), api("replicas", { id }),
  ]);
  $("ds-dcat").textContent = dcat.status === "fulfilled" ? JSON.stringify(dcat.value.dcat, null, 2) : String(dcat.reason.message);
  const list = clear($("ds-providers"));
  if (provs.status === "fulfilled") {
    for (const p of provs.value.providers) list.append(el("li", { title: p.addrs.join(" ") }, p.peer_id));
    if (!provs.value.providers.length) list.append(el("li", { class: "muted" }, "none found"));
  } else {
    list.append(el("li", { class: "error" }, provs.reason.message));
  }
  const rows = clear($("ds-replicas").tBodies[0]);
  if (reps.status === "fulfilled") {
    for (const r of reps.value.replicas) {
      rows.append(el("tr", { "data-state": r.state },
        el("td", { class: "mono", title: r.peer_id }, short(r.peer_id)),
        el("td", {}, r.state),
        el("td", { class: "mono" }, r.addrs.join(" "))));
    }
    const current = reps.value.replicas.filter((r) => r.state === "current").length;
    $("ds-replica-count").textContent = `(${current} of ${reps.value.replicas.length} hold the newest copy)`;
  } else {
    $("ds-replica-count").textContent = "(" + reps.reason.message + ")";
  }
}

async function loadRequests() {
  const body = { direction: "received" };
  if ($("req-state").value) body.state = $("req-state").value;
  const doc = await api("access/requests", body);
  const rows = clear($("requests").tBodies[0]);
  $("requests-empty").textContent = doc.requests.length ? "" : "No request in this state.";
  for (const r of doc.requests) {
    const decision = el("td", {});
    if (r.state === "pending") {
      const reason = el("input", { type: "text", maxlength: "500", placeholder: "reason to deny", "aria-label": "reason" });
      decision.append(
        el("button", { type: "button", class: "approve", onclick: () => decide("approve", { id: r.request_id }) }, "Approve"),
        " ", reason, " ",
        el("button", { type: "button", class: "deny", onclick: () => {
          if (!reason.value.trim()) { showError("Give a reason to deny."); return; }
          decide("deny", { id: r.request_id, reason: reason.value.trim() });
        } }, "Deny"));
    } else {
      decision.append(r.decided_by ? `by ${r.decided_by}` : "", r.grant_id ? ` grant ${short(r.grant_id)}` : "", r.message ? ` — ${r.message}` : "");
    }
    rows.append(el("tr", { "data-id": r.request_id, "data-state": r.state },
      el("td", { class: "mono", title: r.request_id }, r.request_id.slice(0, 12)),
      el("td", {}, el("a", { href: "#/dataset/" + encodeURIComponent(r.dataset_id) }, r.dataset_id.split("/").slice(3).join("/"))),
      el("td", { class: "mono", title: r.requester_org }, short(r.requester_node)),
      el("td", {}, r.purpose, r.note ? el("div", { class: "muted" }, r.note) : null),
      el("td", {}, String(r.days)),
      el("td", { class: "state" }, r.state),
      decision));
  }
}

async function decide(action, body) {
  try {
    await api("access/" + action, body);
    showError(null);
  } catch (e) { showError(e); }
  await loadRequests().catch(showError);
}

async function loadAudit() {
  const [head, alarms, witnessed] = await Promise.all([api("audit/head"), api("audit/alarms"), api("audit/witnessed")]);
  fill($("audit-head"), [
    ["entries", head.size],
    ["root", head.root],
    ["signed at", when(head.timestamp)],
    ["node", head.node],
  ]);
  $("alarm-count").textContent = "(" + alarms.alarms.length + ")";
  const list = clear($("alarms"));
  if (!alarms.alarms.length) list.append(el("li", { class: "ok" }, "No alarm: every witnessed log is consistent."));
  for (const a of alarms.alarms) list.append(el("li", { class: "error" }, JSON.stringify(a)));
  const rows = clear($("witnessed").tBodies[0]);
  for (const w of witnessed.witnessed || []) {
    rows.append(el("tr", {}, el("td", { class: "mono", title: w.log_node }, short(w.log_node)),
      el("td", { class: "mono", title: w.log_org }, short(w.log_org)),
      el("td", {}, String(w.size) + (w.cosigned ? " (cosigned)" : "")), el("td", {}, when(w.timestamp))));
  }
}

// --- live updates: catalog/watch read with fetch (EventSource cannot send the token) ---

function stopLive() {
  if (state.watch) state.watch.abort();
  state.watch = null;
  clearInterval(state.timer);
}

function startLive() {
  stopLive();
  const controller = new AbortController();
  state.watch = controller;
  watchLoop(controller).catch(() => {});
}

async function watchLoop(controller) {
  while (!controller.signal.aborted) {
    try {
      const response = await fetch(API + "catalog/watch", {
        method: "POST", signal: controller.signal, cache: "no-store",
        headers: { "Authorization": "Bearer " + sessionStorage.getItem(TOKEN_KEY), "Content-Type": "application/json" },
        body: "{}",
      });
      if (response.status === 401) { logout("The node refused the token (401): log in again."); return; }
      if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
      $("live-state").textContent = "● live";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          onBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        if (buffer.length > 1 << 20) buffer = "";  // a runaway block: drop it
      }
    } catch (e) {
      if (controller.signal.aborted) return;
    }
    $("live-state").textContent = "○ reconnecting";
    await new Promise((r) => setTimeout(r, 3000));
  }
}

function onBlock(block) {
  const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
  if (!data) return;  // a comment (keep-alive)
  let event;
  try { event = JSON.parse(data); } catch (e) { return; }
  const live = $("live");
  live.prepend(el("li", {}, `${when(event.at)} ${event.kind} `, el("span", { class: "mono" }, event.dataset_id || ""),
    event.title ? ` — ${event.title}` : "", event.lost ? ` (${event.lost} lost)` : ""));
  while (live.children.length > MAX_LIVE) live.lastChild.remove();
  if (!$("view-search").hidden) loadSearch().catch(showError);
}

// --- wiring -----------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout(""));
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); loadSearch().catch(showError); });
  $("req-state").addEventListener("change", () => loadRequests().catch(showError));
  window.addEventListener("hashchange", () => { if (sessionStorage.getItem(TOKEN_KEY)) route(); });
  if (sessionStorage.getItem(TOKEN_KEY)) start(); else logout("");
});
