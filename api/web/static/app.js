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
