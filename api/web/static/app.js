// The pages run under a strict CSP: no inline scripts or handlers, so every behaviour is bound here from data-attributes.
"use strict";

const typing = (target) =>
  ["input", "textarea", "select"].includes((target.tagName || "").toLowerCase()) || target.isContentEditable;

// Selects marked data-autosubmit submit their form on change; links marked data-back go back when there is history.
document.addEventListener("change", (event) => {
  if (event.target.matches && event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
document.addEventListener("click", (event) => {
  const back = event.target.closest && event.target.closest("a[data-back]");
  if (back && window.history.length > 1) {
    event.preventDefault();
    window.history.back();
  }
});

// "/" focuses the search box in the navigation bar.
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
  const box = document.querySelector(".global-search input[name=q]");
  if (box) {
    event.preventDefault();
    box.focus();
    box.select();
  }
});

// Short messages at the bottom of the page, optionally with an Undo button.
function toast(text, { kind = "ok", undo = null, timeout = 0 } = {}) {
  const area = document.getElementById("toasts");
  const node = document.createElement("div");
  node.className = `toast ${kind}`;
  node.setAttribute("role", "status");
  const words = document.createElement("span");
  words.textContent = text;
  node.appendChild(words);
  if (undo) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "undo";
    button.textContent = "Undo";
    button.addEventListener("click", undo);
    node.appendChild(button);
  }
  area.appendChild(node);
  if (timeout) setTimeout(() => node.remove(), timeout);
  return node;
}

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
    const form = area.closest("form[data-commitments]");
    const label = form && form.querySelector(".confirm-edit");
    if (!label) return;
    const kinds = Object.entries(compiled).filter(([, re]) => re.test(area.value)).map(([kind]) => kind);
    label.hidden = kinds.length === 0;
    label.querySelector("input").required = kinds.length > 0;
    label.querySelector(".kinds").textContent = kinds.join(", ");
  }
  document.addEventListener("DOMContentLoaded", () => {
    const compiled = patterns();
    document.querySelectorAll("form[data-commitments] textarea").forEach((area) => {
      check(area, compiled);
      area.addEventListener("input", () => check(area, compiled));
    });
  });
})();

// The review queue: keyboard shortcuts, reject with a reason and an undo delay, and keeping the reviewer's place.
(function () {
  const items = () => Array.from(document.querySelectorAll("article.item"));
  const pending = new Map(); // result id -> {timer, form, item, note}
  let current = 0;

  function focus(index, scroll = true) {
    const all = items();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((el, i) => el.classList.toggle("current", i === current));
    if (scroll) all[current].scrollIntoView({ block: "nearest" });
  }
  function focusItem(item) {
    const index = items().indexOf(item);
    if (index >= 0) focus(index);
  }
  function open(item, selector) {
    const more = item.querySelector("details.more");
    if (more) more.open = true;
    const target = selector && item.querySelector(selector);
    if (target) target.focus();
  }
  function undoDelay() {
    const queue = document.querySelector(".queue");
    return Number((queue && queue.dataset.undoMs) || 5000);
  }
  function countDown() {
    const count = document.getElementById("queue-count");
    if (!count) return;
    const total = Math.max(0, Number(count.dataset.total) - 1);
    count.dataset.total = total;
    count.textContent = `${total} pending`;
  }

  function scheduleReject(item, form) {
    const id = item.dataset.id;
    if (pending.has(id)) return;
    const reason = form.querySelector("input[name=reason]").value;
    const seconds = Math.max(1, Math.round(undoDelay() / 1000));
    item.classList.add("rejecting");
    const note = toast(`Rejecting #${id} (“${reason}”) in ${seconds} s.`, { kind: "pending", undo: () => undo(id) });
    const timer = setTimeout(() => send(id), undoDelay());
    pending.set(id, { timer, form, item, note });
    const all = items();
    focus(all.indexOf(item) + 1 < all.length ? all.indexOf(item) + 1 : all.indexOf(item));
  }
  function undo(id) {
    const entry = pending.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    pending.delete(id);
    entry.note.remove();
    entry.item.classList.remove("rejecting");
    toast(`Kept #${id}: not rejected.`, { timeout: 4000 });
    focusItem(entry.item);
  }
  async function send(id) {
    const entry = pending.get(id);
    if (!entry) return;
    pending.delete(id);
    entry.note.remove();
    let outcome;
    try {
      const response = await fetch(entry.form.action, {
        method: "POST",
        body: new FormData(entry.form),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      outcome = await response.json();
    } catch (error) {
      outcome = { ok: false, message: `#${id} was not rejected: the server could not be reached` };
    }
    if (outcome.ok) {
      const wasCurrent = items().indexOf(entry.item) <= current;
      entry.item.remove();
      countDown();
      if (wasCurrent) current = Math.max(0, current - 1);
      focus(current, false);
      if (!items().length) window.location.reload(); // the page is done: show what is next in this view
    } else {
      entry.item.classList.remove("rejecting");
    }
    toast(outcome.message, { kind: outcome.ok ? "ok" : "error", timeout: 5000 });
  }
  // Leaving the page sends what is still waiting for its undo delay (as an e-mail client's undo-send does).
  window.addEventListener("pagehide", () => {
    for (const entry of pending.values()) {
      clearTimeout(entry.timer);
      navigator.sendBeacon(entry.form.action, new FormData(entry.form));
    }
    pending.clear();
  });

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.matches("article.item form.reject") || !window.fetch) return;
    event.preventDefault();
    scheduleReject(form.closest("article.item"), form);
  });
  document.addEventListener("click", (event) => {
    const item = event.target.closest && event.target.closest("article.item");
    if (item) focusItem(item);
  });
  document.addEventListener("DOMContentLoaded", () => {
    const target = window.location.hash && document.querySelector(`article.item${window.location.hash}`);
    if (target) focus(items().indexOf(target));
    else focus(0, false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && event.target.matches && event.target.matches("article.item form.reject input")) {
      event.target.blur();
      return;
    }
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
    const item = items()[current];
    if (!item) return;
    const press = (selector) => {
      const el = item.querySelector(selector);
      if (el && !el.disabled) el.click();
    };
    switch (event.key) {
      case "j": focus(current + 1); break;
      case "k": focus(current - 1); break;
      case "o": press("a.ref"); break;
      case "a": {
        const confirm = item.querySelector("form.approve input[name=confirm_commitments]");
        if (confirm && !confirm.checked) { confirm.focus(); break; }
        press("form.approve button");
        break;
      }
      case "e": event.preventDefault(); open(item, "form.edit textarea"); break;
      case "r": {
        event.preventDefault(); // the key asks for a reason; Enter rejects (with an undo delay), Escape cancels
        const reason = item.querySelector("form.reject input[name=reason]");
        if (reason) reason.focus();
        break;
      }
      case "x": { const box = item.querySelector("input.pick"); if (box) box.checked = !box.checked; break; }
      default: return;
    }
  });
})();
