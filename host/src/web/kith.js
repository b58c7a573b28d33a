// Kith's one script. Every page works without it; it adds what HTML alone cannot do:
// "/" focuses the search box, cards on the pipeline board can be dragged between stages
// (with pointer events, so mouse, pen and touch all work), and deleting asks first.
"use strict";

document.addEventListener("keydown", (e) => {
  if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey) return;
  const t = e.target;
  if (t instanceof HTMLElement && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
  const box = document.getElementById("search");
  if (box) {
    e.preventDefault();
    box.focus();
    box.select();
  }
});

document.addEventListener("submit", (e) => {
  const button = e.submitter;
  const ask = button && button.getAttribute("data-confirm");
  if (ask && !window.confirm(ask)) e.preventDefault();
});

// Dragging a card: it follows the pointer; the column under the pointer is marked; letting
// go over another column picks that stage in the card's own form and sends it, so a move by
// drag is exactly a move by the form (same checks, same "this stage needs..." page).
(() => {
  const board = document.querySelector("[data-board]");
  if (!board) return;
  let drag = null;

  // What is under the pointer, looking through the card being dragged.
  const columnAt = (x, y, card) => {
    const seen = card.style.visibility;
    card.style.visibility = "hidden";
    const el = document.elementFromPoint(x, y);
    card.style.visibility = seen;
    return el ? el.closest(".column[data-stage]") : null;
  };
  const mark = (col) => {
    board.querySelectorAll(".column.drop").forEach((c) => { if (c !== col) c.classList.remove("drop"); });
    if (col) col.classList.add("drop");
  };

  board.addEventListener("pointerdown", (e) => {
    const card = e.target.closest(".deal-card");
    if (!card || !card.querySelector("form.move") || e.button !== 0) return;
    if (e.target.closest("a, select, button, input, label")) return;
    drag = { card, x: e.clientX, y: e.clientY, moving: false, id: e.pointerId };
    card.setPointerCapture(e.pointerId);
  });

  board.addEventListener("pointermove", (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (!drag.moving && Math.hypot(dx, dy) < 6) return;
    drag.moving = true;
    drag.card.classList.add("dragging");
    drag.card.style.transform = `translate(${dx}px, ${dy}px)`;
    mark(columnAt(e.clientX, e.clientY, drag.card));
    e.preventDefault();
  });

  const finish = (e, drop) => {
    if (!drag || e.pointerId !== drag.id) return;
    const { card, moving } = drag;
    drag = null;
    card.classList.remove("dragging");
    card.style.transform = "";
    mark(null);
    if (!moving || !drop) return;
    const col = columnAt(e.clientX, e.clientY, card);
    const from = card.closest(".column");
    if (!col || col === from) return;
    const form = card.querySelector("form.move");
    form.querySelector("select[name=stage]").value = col.dataset.stage;
    col.querySelector("ol.cards").prepend(card);
    card.classList.add("saving");
    form.requestSubmit();
  };
  board.addEventListener("pointerup", (e) => finish(e, true));
  board.addEventListener("pointercancel", (e) => finish(e, false));
})();
