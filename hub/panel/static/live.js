// SPDX-License-Identifier: Apache-2.0
// Live rates over one Server-Sent Events stream per page (the hub's metrics stream),
// drawn as SVG sparklines; a badge says "live", or "stale" once no rates arrive for a while.

const STALE_AFTER_MS = 10000;
const KEEP = 120;             // points per sparkline
const FILL = 30;              // fewer points than this still spread over the whole width
const W = 120, H = 32;

function parse(el, name, fallback) {
  try { return JSON.parse(el.dataset[name] || ""); } catch { return fallback; }
}

export function sparkPath(values, max) {
  if (!values.length) return "";
  // A short series spreads over the width (a few points were a sliver at the right edge,
  // which looked like no chart); from FILL points on it narrows towards KEEP.
  const step = values.length > 1 ? W / (Math.max(values.length, FILL) - 1) : 0;
  const x0 = W - step * (values.length - 1);
  return values.map((v, i) => {
    const x = (x0 + i * step).toFixed(1);
    const y = (H - 1 - (max > 0 ? v / max : 0) * (H - 2)).toFixed(1);
    return `${i ? "L" : "M"}${x},${y}`;
  }).join(" ");
}

function formatRate(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e3) return (n / 1e3).toFixed(1) + "k";
  return n.toFixed(n < 10 && n % 1 ? 1 : 0);
}

class AgentView {
  constructor(el) {
    this.el = el;
    this.verdicts = parse(el, "verdicts", {});
    this.series = parse(el, "series", []).map(([ts, p, d]) => ({ ts, pass: p, drop: d }));
    this.draw();
  }
  verdict(rule) {
    const v = this.verdicts[rule];
    return v && v.action === "drop" ? "drop" : "pass";
  }
  // The trend's older buckets go before what the live stream has drawn meanwhile.
  history(rows) {
    const first = this.series.length ? this.series[0].ts : Infinity;
    const older = rows.filter(([ts]) => ts < first).map(([ts, p, d]) => ({ ts, pass: p, drop: d }));
    this.series = older.concat(this.series).slice(-KEEP);
    this.draw();
  }
  add(rates) {
    const byTs = new Map();
    for (const r of rates) {
      const row = byTs.get(r.ts) || { ts: r.ts, pass: 0, drop: 0 };
      row[this.verdict(r.rule)] += r.pps;
      byTs.set(r.ts, row);
      const cell = this.el.querySelector(`[data-rule="${CSS.escape(r.rule)}"]`);
      if (cell) cell.textContent = formatRate(r.pps);
    }
    for (const row of [...byTs.values()].sort((a, b) => a.ts - b.ts)) {
      const last = this.series[this.series.length - 1];
      if (last && last.ts === row.ts) { last.pass += row.pass; last.drop += row.drop; }
      else this.series.push(row);
    }
    this.series = this.series.slice(-KEEP);
    const last = this.series[this.series.length - 1];
    if (last) {
      for (const kind of ["pass", "drop"]) {
        const cell = this.el.querySelector(`[data-live="${kind}"]`);
        if (cell) cell.textContent = formatRate(last[kind]);
      }
    }
    this.draw();
  }
  draw() {
    const svg = this.el.querySelector("[data-spark]");
    if (!svg) return;
    const max = Math.max(1, ...this.series.map((s) => Math.max(s.pass, s.drop)));
    svg.querySelector(".spark-pass").setAttribute("d", sparkPath(this.series.map((s) => s.pass), max));
    svg.querySelector(".spark-drop").setAttribute("d", sparkPath(this.series.map((s) => s.drop), max));
  }
}

function setBadge(badge, state) {
  if (!badge) return;
  badge.textContent = state;
  badge.className = "badge " + ({ live: "badge-good", stale: "badge-warn", connecting: "badge-muted", connected: "badge-muted" }[state]);
  badge.dataset.state = state;
}

// The sparklines' start is not in the page (its first render stays cheap): fetched once.
async function loadTrend(url, views) {
  try {
    const res = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!res.ok) return;
    const body = await res.json();
    for (const [id, rows] of Object.entries(body.agents || {})) views.get(id)?.history(rows);
  } catch { /* no trend: the live stream still draws from now on */ }
}

export function startLive(doc) {
  const root = doc.querySelector("[data-stream]");
  if (!root || typeof EventSource === "undefined") return;
  const views = new Map([...root.querySelectorAll("[data-agent]")].map((el) => [el.dataset.agent, new AgentView(el)]));
  const badge = doc.querySelector("[data-live-badge]");
  if (!views.size) return;  // no agent here: nothing to stream, the badge keeps saying so
  let lastData = 0;
  setBadge(badge, "connecting");
  if (root.dataset.trend) loadTrend(root.dataset.trend, views);
  const source = new EventSource(root.dataset.stream);
  source.addEventListener("rates", (event) => {
    let rates;
    try { rates = JSON.parse(event.data); } catch { return; }
    lastData = Date.now();
    setBadge(badge, "live");
    const byAgent = new Map();
    for (const r of rates) {
      if (!byAgent.has(r.agent_id)) byAgent.set(r.agent_id, []);
      byAgent.get(r.agent_id).push(r);
    }
    for (const [id, list] of byAgent) views.get(id)?.add(list);
  });
  source.addEventListener("open", () => {
    if (!lastData) { lastData = Date.now(); setBadge(badge, "connected"); }
  });
  source.addEventListener("error", () => { if (source.readyState === EventSource.CLOSED) setBadge(badge, "stale"); });
  setInterval(() => {
    if (lastData && Date.now() - lastData > STALE_AFTER_MS) setBadge(badge, "stale");
  }, 1000);
  window.addEventListener("pagehide", () => source.close());
}
