// SPDX-License-Identifier: Apache-2.0
// The policy editor: a diagnostic's "line:col" link moves the caret there, and the
// caret's own line:col is shown under the textarea (so "error at 4:7" can be found).

function offsetOf(text, line, col) {
  let offset = 0;
  for (let i = 1; i < line; i++) {
    const next = text.indexOf("\n", offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return Math.min(text.length, offset + Math.max(0, col - 1));
}

function caretPosition(text, offset) {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  return { line, col: offset - before.lastIndexOf("\n") };
}

const CHECK_DELAY_MS = 400;

function renderCheck(box, result) {
  box.replaceChildren();
  const items = result.diagnostics || [];
  const head = doc_el(box, "p", items.length ? `Live check: ${items.length} problem(s) in the unsaved source` : "Live check: no problems in the unsaved source");
  head.className = items.length ? "live-bad" : "live-ok";
  if (!items.length) return;
  const list = doc_el(box, "ul");
  list.className = "diagnostics";
  for (const d of items) {
    const li = doc_el(list, "li");
    li.className = `diag diag-${d.severity}`;
    const where = doc_el(li, "a", `${d.severity} at line ${d.line}:${d.col}`);
    where.href = "#source";
    where.dataset.line = d.line;
    where.dataset.col = d.col;
    li.append(" " + d.message);
  }
}

function doc_el(parent, tag, text) {
  const el = parent.ownerDocument.createElement(tag);
  if (text !== undefined) el.textContent = text;
  parent.append(el);
  return el;
}

function liveCheck(form, area, jump) {
  const url = form.dataset.check;
  const box = form.querySelector("[data-live-check]");
  const token = form.querySelector("input[name=csrf_token]")?.value;
  if (!url || !box || !token) return;
  let timer = 0, seq = 0;
  area.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++seq;
      try {
        const res = await fetch(url, {
          method: "POST", credentials: "same-origin",
          headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
          body: JSON.stringify({ source: area.value }),
        });
        if (!res.ok || !(res.headers.get("Content-Type") || "").includes("json")) return;
        const result = await res.json();
        if (mine === seq) { renderCheck(box, result); box.querySelectorAll("a[data-line]").forEach(jump); }
      } catch { /* offline: the server-side check on save still runs */ }
    }, CHECK_DELAY_MS);
  });
}

export function startEditor(doc) {
  const form = doc.querySelector("[data-editor]");
  if (!form) return;
  const area = form.querySelector("textarea");
  const status = form.querySelector("[data-cursor]");
  const show = () => {
    const { line, col } = caretPosition(area.value, area.selectionStart);
    if (status) status.textContent = `Line ${line}, column ${col}`;
  };
  for (const ev of ["keyup", "click", "focus", "input"]) area.addEventListener(ev, show);
  const jump = (link) => {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const at = offsetOf(area.value, Number(link.dataset.line), Number(link.dataset.col));
      area.focus();
      area.setSelectionRange(at, area.value.indexOf("\n", at) < 0 ? area.value.length : area.value.indexOf("\n", at));
      const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
      area.scrollTop = Math.max(0, (Number(link.dataset.line) - 3) * lineHeight);
      show();
    });
  };
  doc.querySelectorAll("a[data-line]").forEach(jump);
  liveCheck(form, area, jump);
}
