// SPDX-License-Identifier: Apache-2.0
// The policy editor. Without JavaScript the page is a textarea and a server-side review;
// with it, CodeMirror 6 (vendor/codemirror-6.js, loaded only on this page) replaces the
// textarea on screen, highlights the DSL with the grammar's own words (data-keywords),
// and shows the hub's checker's findings at their line:col as the person types: each
// pause sends the unsaved source to the policy's check URL, which answers with the
// diagnostics, the expect lines' outcomes, `explain` and the diff against the deployed
// version. The textarea stays in the form and is kept in step, so "Save" posts it.

const CHECK_DELAY_MS = 400;

function el(parent, tag, text, className) {
  const node = parent.ownerDocument.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  parent.append(node);
  return node;
}

function caretText(line, col) { return `Line ${line}, column ${col}`; }

// --- what the check answers, drawn into the page's boxes -----------------------------

function renderDiagnostics(box, items) {
  box.replaceChildren();
  const head = el(box, "p", items.length ? `Live check: ${items.length} problem(s) in the unsaved source`
    : "Live check: no problems in the unsaved source", items.some((d) => d.severity === "error") ? "live-bad"
    : items.length ? "live-warn" : "live-ok");
  head.dataset.count = String(items.length);
  if (!items.length) return;
  const list = el(box, "ul", undefined, "diagnostics");
  for (const d of items) {
    const li = el(list, "li", undefined, `diag diag-${d.severity}`);
    const where = el(li, "a", `${d.severity} at line ${d.line}:${d.col}`);
    where.href = "#source";
    where.dataset.line = d.line;
    where.dataset.col = d.col;
    li.append(" " + d.message);
  }
}

function renderExpects(box, result) {
  if (!box) return;
  box.replaceChildren();
  const outcomes = result.expects || [];
  if (!result.plan_digest) { el(box, "p", "They run once the policy has no errors.", "muted"); return; }
  if (!outcomes.length) { el(box, "p", "This policy has no expect lines.", "muted"); return; }
  const failed = outcomes.filter((o) => !o.passed).length;
  const head = el(box, "p");
  el(head, "span", `${outcomes.length - failed} passed`, "badge badge-good");
  if (failed) { head.append(" "); el(head, "span", `${failed} failed`, "badge badge-bad"); }
  const list = el(box, "ul", undefined, "expects");
  for (const o of outcomes) {
    const li = el(list, "li", undefined, o.passed ? "ok" : "fail");
    const where = el(li, "a", `line ${o.line}`);
    where.href = "#source";
    where.dataset.line = o.line;
    where.dataset.col = 1;
    li.append(` expect ${o.expected} `);
    el(li, "code", o.packet);
    if (!o.passed) li.append(`: got ${o.actual}`);
  }
}

function renderDiff(box, result, deployed) {
  if (!box || !deployed) return;
  box.replaceChildren();
  if (!result.diff.length) { el(box, "p", `Same as the deployed version ${deployed}, line for line.`, "muted"); return; }
  const pre = el(box, "pre", undefined, "diff");
  for (const d of result.diff) { el(pre, "span", d.line, `d-${d.kind}`); pre.append("\n"); }
}

// --- the request ------------------------------------------------------------------------

function checker(form) {
  const url = form.dataset.check;
  const token = form.querySelector("input[name=csrf_token]")?.value;
  const deployed = form.dataset.deployed ? Number(form.dataset.deployed) : null;
  if (!url || !token) return null;
  let seq = 0;
  return async (source) => {
    const mine = ++seq;
    const res = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ source, deployed_version: deployed }),
    });
    if (!res.ok || !(res.headers.get("Content-Type") || "").includes("json")) return null;
    const result = await res.json();
    return mine === seq ? result : null; // an older answer arriving late is dropped
  };
}

function showReview(doc, form, result) {
  const box = form.querySelector("[data-live-check]");
  renderDiagnostics(box, result.diagnostics || []);
  renderExpects(doc.querySelector("[data-expects]"), result);
  renderDiff(doc.querySelector("[data-diff]"), result, form.dataset.deployed);
  const explain = doc.querySelector("[data-explain]");
  if (explain) explain.textContent = result.explain || "The policy has errors: nothing to explain yet.";
}

// One click handler for every "line:col" link, present or drawn later: it moves the caret
// with whichever editor is there (the textarea at first, CodeMirror once it has loaded).
function onJump(doc, target) {
  doc.addEventListener("click", (event) => {
    const link = event.target.closest?.("a[data-line]");
    if (!link) return;
    event.preventDefault();
    target.jump(Number(link.dataset.line), Number(link.dataset.col));
  });
}

// --- the DSL's highlighting: a stream mode over the grammar's tokens ---------------------

function dslMode(keywords) {
  const words = new Set(keywords);
  const verdicts = new Set(["pass", "drop"]);
  return {
    name: "bulwark",
    token(stream) {
      if (stream.eatSpace()) return null;
      if (stream.match(/^#.*/)) return "comment";
      if (stream.match(/^"[^"\n]*"?/)) return "string";
      if (stream.match(/^@[A-Za-z_][A-Za-z0-9_-]*/)) return "variableName";
      if (stream.match(/^\d+\.\d+\.\d+\.\d+(\/\d+)?/)) return "atom";
      if (stream.match(/^[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(\/\d+)?/)) return "atom";
      if (stream.match(/^\d+(ms|s|m|h|d)\b/)) return "unit";
      if (stream.match(/^\d+/)) return "number";
      if (stream.match(/^(->|[<>]=?|[|/,-])/)) return "operator";
      if (stream.match(/^[{}[\]]/)) return "bracket";
      const word = stream.match(/^[A-Za-z_][A-Za-z0-9_-]*/);
      if (word) return verdicts.has(word[0]) ? word[0] : words.has(word[0]) ? "keyword" : "name";
      stream.next();
      return null;
    },
    tokenTable: {},
  };
}

function highlighting(cm) {
  const t = cm.tags;
  return cm.HighlightStyle.define([
    { tag: t.comment, color: "#6a7385", fontStyle: "italic" },
    { tag: t.string, color: "#0b7a43" },
    { tag: t.keyword, color: "#2457c5", fontWeight: "600" },
    { tag: t.controlKeyword, color: "#b42318", fontWeight: "700" },
    { tag: t.bool, color: "#18794e", fontWeight: "700" },
    { tag: t.variableName, color: "#8a3ab9" },
    { tag: t.atom, color: "#9a4d00" },
    { tag: t.number, color: "#9a4d00" },
    { tag: t.unit, color: "#9a4d00" },
    { tag: t.operator, color: "#5d6778" },
  ]);
}

// --- mounting ----------------------------------------------------------------------------

function position(doc, line, col) {
  const l = doc.line(Math.min(Math.max(1, line || 1), doc.lines));
  const from = Math.min(l.to, l.from + Math.max(0, (col || 1) - 1));
  const rest = doc.sliceString(from, l.to).match(/^\S*/)[0].length;
  return { from, to: Math.max(from, from + rest) };
}

function mount(cm, doc, form, area, target) {
  const status = form.querySelector("[data-cursor]");
  const check = checker(form);
  const label = doc.querySelector(`label[for="${area.id}"]`);
  const keywords = (form.dataset.keywords || "").split(/\s+/).filter(Boolean);
  const language = cm.StreamLanguage.define({ ...dslMode(keywords), tokenTable: { drop: cm.tags.controlKeyword, pass: cm.tags.bool, unit: cm.tags.unit } });

  const lint = cm.linter(async (view) => {
    if (!check) return [];
    let result;
    try { result = await check(view.state.doc.toString()); } catch { return []; }
    if (!result) return [];
    showReview(doc, form, result);
    return (result.diagnostics || []).map((d) => ({
      ...position(view.state.doc, d.line, d.col), severity: d.severity, message: d.message + (d.hint ? `\n${d.hint}` : ""),
    }));
  }, { delay: CHECK_DELAY_MS });

  const view = new cm.EditorView({
    parent: area.parentElement,
    state: cm.EditorState.create({
      doc: area.value,
      extensions: [
        cm.lineNumbers(), cm.highlightActiveLineGutter(), cm.highlightSpecialChars(), cm.history(),
        cm.drawSelection(), cm.bracketMatching(), cm.highlightActiveLine(), language,
        cm.syntaxHighlighting(highlighting(cm)), cm.lintGutter(), lint,
        cm.keymap.of([...cm.defaultKeymap, ...cm.historyKeymap, cm.indentWithTab]),
        cm.EditorState.readOnly.of(area.readOnly),
        cm.EditorView.contentAttributes.of({ "aria-labelledby": label?.id || "", "aria-multiline": "true" }),
        cm.EditorView.updateListener.of((u) => {
          if (u.docChanged) area.value = u.state.doc.toString();
          if (u.selectionSet || u.docChanged) {
            const head = u.state.selection.main.head;
            const line = u.state.doc.lineAt(head);
            if (status) status.textContent = caretText(line.number, head - line.from + 1);
          }
        }),
      ],
    }),
  });
  area.after(view.dom);
  area.hidden = true;
  label?.removeAttribute("for"); // the label now names the editor (aria-labelledby), not the hidden textarea
  label?.addEventListener("click", () => view.focus());

  target.jump = (line, col) => {
    const at = position(view.state.doc, line, col);
    view.dispatch({ selection: { anchor: at.to, head: at.from }, scrollIntoView: true }); // the caret at line:col, the token selected
    view.focus();
  };
  return view;
}

// --- without CodeMirror (it failed to load): the textarea, enhanced a little --------------

function offsetOf(text, line, col) {
  let offset = 0;
  for (let i = 1; i < line; i++) {
    const next = text.indexOf("\n", offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return Math.min(text.length, offset + Math.max(0, col - 1));
}

function plain(doc, form, area, target) {
  const status = form.querySelector("[data-cursor]");
  const show = () => {
    const before = area.value.slice(0, area.selectionStart);
    if (status) status.textContent = caretText(before.split("\n").length, area.selectionStart - before.lastIndexOf("\n"));
  };
  for (const ev of ["keyup", "click", "focus", "input"]) area.addEventListener(ev, show);
  target.jump = (line, col) => {
    const at = offsetOf(area.value, line, col);
    area.focus();
    area.setSelectionRange(at, at);
    show();
  };
  const check = checker(form);
  let timer = 0;
  const onInput = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      try {
        const result = check && await check(area.value);
        if (result) showReview(doc, form, result);
      } catch { /* offline: the check on save still runs */ }
    }, CHECK_DELAY_MS);
  };
  area.addEventListener("input", onInput);
  return () => { area.removeEventListener("input", onInput); clearTimeout(timer); };
}

export async function startEditor(doc) {
  const form = doc.querySelector("[data-editor]");
  if (!form) return;
  const area = form.querySelector("textarea");
  const target = {};
  onJump(doc, target);
  const stopPlain = plain(doc, form, area, target); // usable at once, until CodeMirror is there
  try {
    const cm = await import("./vendor/codemirror-6.js");
    stopPlain();
    mount(cm, doc, form, area, target);
  } catch (error) {
    console.warn("the code editor did not load; the plain text area is used", error);
  }
}
