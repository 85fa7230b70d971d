// Selects marked data-autosubmit submit their form on change (no inline handlers: the pages run under a strict CSP).
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});

// An edit that promises a refund, credit, discount, deadline or escalation needs the reviewer to confirm it, named.
// (The server checks again; this shows the confirmation as the reviewer types.)
(function () {
  function patterns() {
    const node = document.getElementById("commitment-patterns");
    if (!node) return {};
    const raw = JSON.parse(node.dataset.patterns || "{}");
    return Object.fromEntries(Object.entries(raw).map(([kind, source]) => [kind, new RegExp(source, "i")]));
  }
  function check(area, compiled) {
    const form = area.closest("form.edit");
    const label = form && form.querySelector(".confirm-edit");
    if (!label) return;
    const kinds = Object.entries(compiled).filter(([, re]) => re.test(area.value)).map(([kind]) => kind);
    label.hidden = kinds.length === 0;
    label.querySelector("input").required = kinds.length > 0;
    label.querySelector(".kinds").textContent = kinds.join(", ");
  }
  document.addEventListener("DOMContentLoaded", () => {
    const compiled = patterns();
    document.querySelectorAll("form.edit textarea").forEach((area) => {
      check(area, compiled);
      area.addEventListener("input", () => check(area, compiled));
    });
  });
})();

// Review queue keyboard shortcuts: j/k move, a approve, e edit, r reject, x select for batch approval.
(function () {
  const items = () => Array.from(document.querySelectorAll("article.item"));
  let current = 0;
  function focus(index) {
    const all = items();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((el, i) => el.classList.toggle("current", i === current));
    all[current].scrollIntoView({ block: "nearest" });
  }
  document.addEventListener("DOMContentLoaded", () => focus(0));
  document.addEventListener("keydown", (event) => {
    const tag = (event.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || event.ctrlKey || event.metaKey || event.altKey) return;
    const item = items()[current];
    if (!item) return;
    const press = (selector) => { const el = item.querySelector(selector); if (el && !el.disabled) el.click(); };
    switch (event.key) {
      case "j": focus(current + 1); break;
      case "k": focus(current - 1); break;
      case "a": {
        const confirm = item.querySelector("form.approve input[name=confirm_commitments]");
        if (confirm && !confirm.checked) { confirm.focus(); break; }
        press("form.approve button");
        break;
      }
      case "e": { const area = item.querySelector("form.edit textarea"); if (area) { event.preventDefault(); area.focus(); } break; }
      case "r": press("form.reject button"); break;
      case "x": { const box = item.querySelector("input.pick"); if (box) box.checked = !box.checked; break; }
      default: return;
    }
  });
})();
