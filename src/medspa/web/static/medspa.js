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
