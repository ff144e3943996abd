// SPDX-License-Identifier: Apache-2.0
// A rollout's progress on the policy page: while the deployment is in canary or released,
// ask its progress URL every few seconds and redraw the state, the count and the targets.

const POLL_MS = 2000;
const MAX_POLLS = 300;
const MOVING = new Set(["canary", "released"]);
const BADGE = { complete: "good", failed: "bad", canary: "warn", released: "warn" };

export function startRollout(doc) {
  const box = doc.querySelector("[data-rollout]");
  if (!box || !MOVING.has(box.dataset.state)) return;
  let polls = 0;
  const tick = async () => {
    polls += 1;
    let p;
    try {
      const res = await fetch(box.dataset.rollout, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!res.ok) return;
      p = await res.json();
    } catch { return; }
    const badge = doc.createElement("span");
    badge.className = `badge badge-${BADGE[p.state] || "muted"}`;
    badge.textContent = p.state;
    box.querySelector("[data-rollout-state]").replaceChildren(badge);
    doc.querySelector("[data-rollout-history]")?.replaceChildren(badge.cloneNode(true));  // its row in the history
    box.querySelector("[data-rollout-count]").textContent = `${p.applied} of ${p.total} applied`;
    const bar = box.querySelector("progress");
    if (bar) { bar.max = p.total || 1; bar.value = p.applied; }
    const rows = p.targets.map((t) => {
      const tr = doc.createElement("tr");
      for (const text of [t.agent, t.canary ? "canary" : "target", t.status]) {
        const td = doc.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    });
    box.querySelector("[data-rollout-targets]").replaceChildren(...rows);
    box.dataset.state = p.state;
    if (MOVING.has(p.state) && polls < MAX_POLLS) setTimeout(tick, POLL_MS);
  };
  setTimeout(tick, POLL_MS);
}
