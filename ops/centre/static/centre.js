// ZF801 command centre page: asks the server for the figures with the viewer token it was
// given (in the URL fragment, never sent to the server in a URL), and draws them.
"use strict";

const LABELS = {
  zh: {
    title: "全国执行指挥系统 · 网络查控总线", connecting: "连接中", live: "实时", lost: "连接中断",
    active: "在控指令", pending: "待签收", overdue: "签收超时", hits: "命中",
    queries: "查询（已答/总数）", queries_col: "查询", records: "已读记录", by_kind: "在控指令（按类型）",
    hits_per_minute: "每分钟命中", hit_latency: "命中时延分布（毫秒）", query_latency: "查询时延分布（毫秒）",
    provinces: "各省（按待签收积压着色）", province: "省份", dead_letters: "死信（按原因）",
    health: "代理与处理器健康", group: "处理器", lag: "积压", members: "实例", court_view: "法院明细",
    orders: "指令", alerts: "预警", kind: "类型", case: "案号", state: "状态", ack: "签收",
    ends: "控制期限", time: "时间", place: "地点", brokers: "代理", healthy: "正常", unhealthy: "异常",
    none: "无", no_token: "未认证：请使用 zf801 command-centre token 生成的地址打开本页。",
    ExitRestrictionOrder: "限制出境", VehicleSearchOrder: "查找车辆", LocateDebtorOrder: "查找被执行人",
    national: "全国（最高法）", switch: "English",
  },
  en: {
    title: "National enforcement command · ZF801 bus", connecting: "connecting", live: "live", lost: "connection lost",
    active: "Active orders", pending: "Acks pending", overdue: "Acks overdue", hits: "Hits",
    queries: "Queries (answered/asked)", queries_col: "Queries", records: "Records read", by_kind: "Active orders by kind",
    hits_per_minute: "Hits per minute", hit_latency: "Hit latency (ms)", query_latency: "Query latency (ms)",
    provinces: "Provinces (coloured by pending backlog)", province: "Province", dead_letters: "Dead letters by reason",
    health: "Broker and worker health", group: "Processor", lag: "Lag", members: "Members", court_view: "Court drill-down",
    orders: "Orders", alerts: "Alerts", kind: "Kind", case: "Case", state: "State", ack: "Ack",
    ends: "Control ends", time: "Time", place: "Place", brokers: "Brokers", healthy: "healthy", unhealthy: "not healthy",
    none: "none", no_token: "Not authenticated: open this page with the address printed by zf801 command-centre token.",
    ExitRestrictionOrder: "Exit restriction", VehicleSearchOrder: "Vehicle search", LocateDebtorOrder: "Locate debtor",
    national: "National (SPC)", switch: "中文",
  },
};

const params = new URLSearchParams(location.search);
let lang = params.get("lang") === "en" ? "en" : "zh";
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("token")) {
  sessionStorage.setItem("zf801-token", fragment.get("token"));
  history.replaceState(null, "", location.pathname + location.search);
}
const token = sessionStorage.getItem("zf801-token");
// A new address with a token in its fragment only changes the fragment: start afresh.
window.addEventListener("hashchange", () => {
  const next = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!next) return;
  sessionStorage.setItem("zf801-token", next);
  history.replaceState(null, "", location.pathname + location.search);
  location.reload();
});
const charts = {};
const last = {};

function t(key) { return (LABELS[lang] || LABELS.zh)[key] || key; }

function applyLabels() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const el of document.querySelectorAll("[data-label]")) el.textContent = t(el.dataset.label);
  document.getElementById("lang").textContent = t("switch");
  if (last.national) drawNational(last.national);
  if (last.court) drawCourt(last.court);
}

function showError(text) {
  const el = document.getElementById("error");
  el.textContent = text;
  el.hidden = false;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = String(text);
  if (cls) td.className = cls;
  return td;
}

function fill(id, rows, build) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  for (const item of rows) build(body.insertRow(), item);
}

function setFigures(root, data) {
  for (const el of root.querySelectorAll("[data-figure]")) {
    const value = el.dataset.figure.split(".").reduce((v, k) => (v == null ? v : v[k]), data);
    el.textContent = value == null ? "–" : String(value);
  }
}

function chart(id, title, data, bars, labels) {
  const el = document.getElementById(id);
  const x = labels ? { values: (u, splits) => splits.map((i) => labels[i] ?? "") } : {};
  const opts = {
    width: Math.max(320, el.clientWidth || 380), height: 180,
    scales: { x: { time: !bars } },
    axes: [x, {}],
    series: [{}, { label: title, stroke: "#8c1c13", fill: "#8c1c1333", width: 2,
                   paths: bars ? uPlot.paths.bars({ size: [0.8] }) : undefined }],
    legend: { show: false },
  };
  if (charts[id]) charts[id].destroy();
  charts[id] = new uPlot(opts, data, el);
}

function histogram(id, title, latency) {
  const x = latency.counts.map((_, i) => i);
  const labels = latency.buckets_ms.map((b) => `≤${b}`).concat([`>${latency.buckets_ms.at(-1)}`]);
  chart(id, title, [x, latency.counts], true, labels);
  charts[id].root.title = labels.map((l, i) => `${l}: ${latency.counts[i]}`).join("  ");
}

function drawNational(data) {
  const section = document.getElementById("national");
  section.hidden = false;
  setFigures(section, data);
  fill("kinds", Object.entries(data.active), (row, [kind, n]) => {
    row.dataset.kind = kind;
    cell(row, t(kind)); cell(row, n, "n");
  });
  const minutes = data.hits_per_minute;
  chart("hits-chart", t("hits_per_minute"), [minutes.map((m) => m[0]), minutes.map((m) => m[1])], false);
  histogram("latency-chart", t("hit_latency"), data.hit_latency);
  histogram("query-latency-chart", t("query_latency"), data.queries.latency);
  const worst = Math.max(1, ...data.provinces.map((p) => p.pending));
  fill("provinces", data.provinces, (row, p) => {
    row.dataset.province = p.province;
    row.style.background = `hsla(4, 80%, 50%, ${(0.7 * p.pending) / worst})`;
    cell(row, p.province === "national" ? t("national") : `${p.province} ${lang === "en" ? p.iso : p.name}`);
    for (const k of ["active", "pending", "overdue", "hits", "queries"]) cell(row, p[k], "n").dataset.figure = k;
  });
  const reasons = Object.entries(data.dead_letters);
  fill("dead-letters", reasons.length ? reasons : [[t("none"), 0]], (row, [reason, n]) => {
    row.dataset.reason = reason;
    cell(row, reason); cell(row, n, "n");
  });
  drawHealth(data.health);
}

function drawHealth(health) {
  const el = document.getElementById("health");
  el.replaceChildren();
  if (!health || health.ok === undefined) return;
  const verdict = document.createElement("p");
  verdict.id = "health-verdict";
  verdict.className = health.ok ? "ok" : "bad";
  verdict.textContent = `${health.ok ? t("healthy") : t("unhealthy")} · ${t("brokers")}: ${(health.brokers || []).length}`;
  el.append(verdict);
  fill("groups", health.groups || [], (row, g) => {
    row.dataset.group = g.group;
    cell(row, g.group); cell(row, g.lag, g.lag ? "n bad" : "n"); cell(row, g.members, "n");
  });
}

function drawCourt(data) {
  const section = document.getElementById("court");
  section.hidden = false;
  document.getElementById("court-code").textContent = data.court;
  setFigures(section, data);
  fill("court-orders", data.orders, (row, o) => {
    row.dataset.order = o.order_id;
    cell(row, t(o.kind)); cell(row, o.case_number); cell(row, o.state);
    cell(row, o.acknowledged, o.acknowledged === "OVERDUE" ? "bad" : ""); cell(row, o.ends.slice(0, 16));
  });
  fill("court-alerts", data.alerts, (row, a) => {
    cell(row, a.at.slice(0, 19)); cell(row, a.kind); cell(row, a.place); cell(row, a.case_number);
  });
}

async function follow(path, draw, key) {
  const headers = { Authorization: `Bearer ${token}` };
  for (;;) {
    try {
      const response = await fetch(path, { headers, cache: "no-store" });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        showError(body.error || `HTTP ${response.status}`);
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = (message.match(/^event: (.*)$/m) || [])[1];
          const data = message.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (event === "expired") { showError(JSON.parse(data).error); return; }
          if (event !== "figures") continue;
          last[key] = JSON.parse(data);
          draw(last[key]);
          document.body.dataset[`${key}Version`] = String(last[key].version);
          document.getElementById("status").textContent = t("live");
          document.getElementById("status").className = "live";
        }
      }
    } catch (err) {
      document.getElementById("status").textContent = t("lost");
      document.getElementById("status").className = "";
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function start() {
  document.getElementById("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; applyLabels(); };
  applyLabels();
  if (!token) { showError(t("no_token")); return; }
  const response = await fetch("/api/whoami", { headers: { Authorization: `Bearer ${token}` } });
  const me = await response.json();
  if (!response.ok) { showError(me.error || `HTTP ${response.status}`); return; }
  document.getElementById("viewer").textContent = `${me.agency} ${lang === "en" ? me.name_en : me.name}`;
  const court = params.get("court") || me.court;
  if (me.national) follow("/api/national/stream", drawNational, "national");
  if (court) follow(`/api/courts/${encodeURIComponent(court)}/stream`, drawCourt, "court");
}

start();
