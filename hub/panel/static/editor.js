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
  for (const link of doc.querySelectorAll("a[data-line]")) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      const at = offsetOf(area.value, Number(link.dataset.line), Number(link.dataset.col));
      area.focus();
      area.setSelectionRange(at, area.value.indexOf("\n", at) < 0 ? area.value.length : area.value.indexOf("\n", at));
      const lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 18;
      area.scrollTop = Math.max(0, (Number(link.dataset.line) - 3) * lineHeight);
      show();
    });
  }
}
