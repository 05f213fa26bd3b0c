// Keeps a keyboard user's place across HTMX updates: when a swap replaced the element that had focus,
// focus goes to the same element in the new content (by id), else to the appointment block or the
// section it was in, else to the updated region, never to the page's body.
(function () {
  "use strict";
  let remembered = [];
  document.addEventListener("htmx:beforeRequest", function () {
    const active = document.activeElement;
    remembered = [];
    if (!active || active === document.body) return;
    for (let node = active; node && node !== document.body; node = node.parentElement) {
      if (node.id) remembered.push(node.id);
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    const active = document.activeElement;
    if (active && active !== document.body && document.contains(active)) return;
    for (const id of remembered) {
      const found = document.getElementById(id);
      if (found) {
        if (!found.matches("a, button, input, select, textarea, summary, [tabindex]")) found.setAttribute("tabindex", "-1");
        found.focus({ preventScroll: true });
        return;
      }
    }
    const target = event.detail && event.detail.target;
    if (target && document.contains(target)) {
      if (!target.hasAttribute("tabindex")) target.setAttribute("tabindex", "-1");
      target.focus({ preventScroll: true });
    }
  });
})();

// Dragging an appointment block to another time or provider column of the day moves it: the drop
// posts to the block's move URL (the same reschedule as its Move form), snapped to the location's
// booking grid; the day comes back with the result, or with why the move was refused. Only the provider
// view drags: in the room and device views no block is draggable and no column (no data-provider) takes
// a drop, so a block never changes provider there (its Move form changes the time).
(function () {
  "use strict";
  let dragged = null;
  document.addEventListener("dragstart", function (event) {
    const block = event.target.closest && event.target.closest("article.appt[data-move]");
    if (!block) return;
    dragged = { url: block.dataset.move, grab: event.clientY - block.getBoundingClientRect().top };
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", block.id);
  });
  document.addEventListener("dragend", function () { dragged = null; });
  document.addEventListener("dragover", function (event) {
    if (dragged && event.target.closest && event.target.closest(".column[data-provider]")) event.preventDefault();
  });
  document.addEventListener("drop", function (event) {
    const column = event.target.closest && event.target.closest(".column[data-provider]");
    const board = column && column.closest(".board");
    if (!dragged || !column || !board) return;
    event.preventDefault();
    const perMinute = Number(board.dataset.pixelsPerHour) / 60;
    const grid = Number(board.dataset.grid) || 5;
    const top = event.clientY - dragged.grab - column.getBoundingClientRect().top;
    let minute = Number(board.dataset.firstMinute) + Math.round(top / perMinute / grid) * grid;
    minute = Math.max(0, Math.min(24 * 60 - grid, minute));
    const time = String(Math.floor(minute / 60)).padStart(2, "0") + ":" + String(minute % 60).padStart(2, "0");
    const values = { date: board.dataset.date, time: time, provider_id: column.dataset.provider };
    window.htmx.ajax("POST", dragged.url, { target: "#day", swap: "outerHTML", values: values });
    dragged = null;
  });
})();
