// mqttmesh dashboard: plain JS, no build step. Talks to /api/v5 with a bearer token.
"use strict";
const API = "/api/v5";
const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("mqttmesh-token");
let samples = [];          // [{t, in, out}] message rates for the chart
let last = null;           // previous aggregated metrics sample
let timer = null;

async function api(method, path, body) {
  const headers = {"Accept": "application/json"};
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(API + path, {method, headers,
    body: body === undefined ? undefined : JSON.stringify(body)});
  if (res.status === 401 && path !== "/login") { logout(); throw new Error("session expired"); }
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error((data && data.message) || res.statusText);
  return data;
}

function esc(v) {
  return String(v === null || v === undefined ? "" : v)
    .replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}

function fill(table, rows, cells, cls) {
  const body = $(table + " tbody");
  body.innerHTML = rows.map((r) =>
    `<tr class="${cls ? cls(r) : ""}">${cells(r).map((c) => `<td>${c}</td>`).join("")}</tr>`).join("");
}

function showError(e) { $("#error").textContent = e ? String(e.message || e) : ""; }

function uptime(ms) {
  if (!ms) return "";
  const s = Math.floor(ms / 1000);
  return s < 120 ? s + " s" : s < 7200 ? Math.floor(s / 60) + " min" : Math.floor(s / 3600) + " h";
}

async function refreshOverview() {
  const [nodes, metrics, stats, cluster] = await Promise.all([
    api("GET", "/nodes"), api("GET", "/metrics?aggregate=true"),
    api("GET", "/stats?aggregate=true"), api("GET", "/cluster")]);
  $("#cluster-name").textContent = cluster.name + " @ " + cluster.self;
  $("#t-nodes").textContent = cluster.running_nodes.length + " / " + cluster.nodes.length;
  $("#t-connections").textContent = stats["connections.count"] || 0;
  $("#t-subscriptions").textContent = stats["subscriptions.count"] || 0;
  const now = performance.now() / 1000;
  if (last) {
    const dt = Math.max(now - last.t, 0.001);
    const rin = Math.max(0, (metrics["messages.received"] - last.in) / dt);
    const rout = Math.max(0, (metrics["messages.sent"] - last.out) / dt);
    samples.push({t: now, in: rin, out: rout});
    if (samples.length > 120) samples.shift();
    $("#t-in").textContent = rin.toFixed(1);
    $("#t-out").textContent = rout.toFixed(1);
  }
  last = {t: now, in: metrics["messages.received"] || 0, out: metrics["messages.sent"] || 0};
  drawChart();
  fill("#nodes-table", nodes, (n) => [
    esc(n.node), esc(n.node_status), esc(n.role), esc(n.connections), esc(n.subscriptions),
    esc(n.routes), esc(uptime(n.uptime)),
    esc(Object.entries(n.cluster_links || {}).map(([p, s]) => p + ": " + s).join(", ")),
    n.node === cluster.self ? "" :
      `<button class="force-leave" data-node="${esc(n.node)}">force leave</button>`,
  ], (n) => n.node_status === "running" ? "running" : "stopped");
}

function drawChart() {
  const c = $("#rate-chart");
  const g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const max = Math.max(1, ...samples.map((s) => Math.max(s.in, s.out)));
  g.strokeStyle = "#e3e7ec"; g.fillStyle = "#667"; g.font = "11px sans-serif";
  for (let i = 0; i <= 4; i++) {
    const y = 10 + (c.height - 30) * i / 4;
    g.beginPath(); g.moveTo(40, y); g.lineTo(c.width - 10, y); g.stroke();
    g.fillText((max * (4 - i) / 4).toFixed(max < 10 ? 1 : 0), 2, y + 4);
  }
  const line = (key, color) => {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    samples.forEach((s, i) => {
      const x = 40 + (c.width - 50) * i / 119;
      const y = 10 + (c.height - 30) * (1 - s[key] / max);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  };
  line("in", "#2a7ae2"); line("out", "#2aa85a");
  g.fillStyle = "#2a7ae2"; g.fillText("received/s", 50, c.height - 6);
  g.fillStyle = "#2aa85a"; g.fillText("sent/s", 130, c.height - 6);
}

async function refreshClients() {
  const q = $("#clients-search").value;
  const page = await api("GET", "/clients?limit=500" + (q ? "&like_clientid=" + encodeURIComponent(q) : ""));
  fill("#clients-table", page.data, (c) => [esc(c.clientid), esc(c.username), esc(c.node),
    c.connected ? "yes" : "no", esc((c.ip_address || "") + (c.port ? ":" + c.port : "")),
    esc(c.proto_ver), esc(c.subscriptions_cnt),
    `<button class="kick" data-client="${esc(c.clientid)}">kick</button>`]);
}

async function refreshSubscriptions() {
  const page = await api("GET", "/subscriptions?limit=1000");
  fill("#subscriptions-table", page.data, (s) => [esc(s.topic), esc(s.clientid), esc(s.node),
    esc(s.qos), esc(s.share_group)]);
}

async function refreshRoutes() {
  const page = await api("GET", "/routes?limit=1000");
  fill("#routes-table", page.data, (r) => [esc(r.topic), esc(r.node)]);
}

async function refreshRetained() {
  const page = await api("GET", "/mqtt/retainer/messages?limit=1000");
  fill("#retained-table", page.data, (m) => {
    let text;
    try { text = atob(m.payload); } catch (e) { text = m.payload; }
    return [esc(m.topic), esc(text.slice(0, 200)), esc(m.qos), esc(m.from_clientid || m.from_node)];
  });
}

const TABS = {overview: refreshOverview, clients: refreshClients,
  subscriptions: refreshSubscriptions, routes: refreshRoutes, retained: refreshRetained};

function currentTab() {
  const name = location.hash.slice(1);
  return TABS[name] ? name : "overview";
}

async function tick() {
  const tab = currentTab();
  document.querySelectorAll(".tab").forEach((el) => { el.hidden = el.id !== "tab-" + tab; });
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === tab));
  try { await TABS[tab](); showError(null); } catch (e) { showError(e); }
}

function start() {
  $("#login-view").hidden = true;
  $("#main-view").hidden = false;
  samples = []; last = null;
  tick();
  if (timer) clearInterval(timer);
  timer = setInterval(tick, 1000);
}

function logout() {
  if (token) fetch(API + "/logout", {method: "POST", headers: {"Authorization": "Bearer " + token}}).catch(() => {});
  token = null;
  sessionStorage.removeItem("mqttmesh-token");
  if (timer) clearInterval(timer);
  $("#main-view").hidden = true;
  $("#login-view").hidden = false;
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    const res = await api("POST", "/login", {username: $("#username").value, password: $("#password").value});
    token = res.token;
    sessionStorage.setItem("mqttmesh-token", token);
    start();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});
$("#logout").addEventListener("click", logout);
window.addEventListener("hashchange", tick);
$("#clients-search").addEventListener("input", tick);
document.addEventListener("click", async (ev) => {
  const t = ev.target;
  try {
    if (t.classList.contains("force-leave") && confirm("Remove " + t.dataset.node + " from the cluster?")) {
      await api("DELETE", "/cluster/" + encodeURIComponent(t.dataset.node));
      tick();
    } else if (t.classList.contains("kick")) {
      await api("DELETE", "/clients/" + encodeURIComponent(t.dataset.client));
      tick();
    }
  } catch (e) { showError(e); }
});
if (token) start();
