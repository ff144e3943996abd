// SPDX-License-Identifier: Apache-2.0
// The header's disclosure menus (<details data-menu>) open and close without this file;
// it makes them behave like menus: opening one closes the others, Escape closes the open
// one and gives focus back to its summary, a click or focus outside closes it.

export function startMenus(doc) {
  const menus = [...doc.querySelectorAll("details[data-menu]")];
  if (!menus.length) return;
  const closeAll = (except) => menus.forEach((m) => { if (m !== except) m.open = false; });
  for (const m of menus) {
    m.addEventListener("toggle", () => { if (m.open) closeAll(m); });
  }
  doc.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    const open = menus.find((m) => m.open);
    if (!open) return;
    open.open = false;
    open.querySelector("summary").focus();
  });
  doc.addEventListener("click", (e) => {
    if (!menus.some((m) => m.contains(e.target))) closeAll(null);
  });
  doc.addEventListener("focusin", (e) => {
    if (!menus.some((m) => m.contains(e.target))) closeAll(null);
  });
}
