// Herald admin: live progress, the audience preview, confirmations. No inline script (CSP).
"use strict";

function csrfToken() {
  const field = document.querySelector("input[name=csrf_token]");
  return field ? field.value : "";
}

function pollProgress() {
  const boxes = Array.from(document.querySelectorAll("[data-progress]"));
  if (!boxes.length) return;
  const ids = [...new Set(boxes.map((b) => b.dataset.progress))].join(",");
  const fmt = (n) => n.toLocaleString("en").replace(/,/g, "\u202f");
  let timer = null;
  const tick = async () => {
    if (document.hidden) return; // a background tab asks nothing
    let data;
    try {
      const answer = await fetch(`/admin/mailings/progress?ids=${ids}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (answer.status === 401) {
        clearInterval(timer);
        showNotice("Your session has ended: reload the page to log in again.");
        return;
      }
      if (!answer.ok) return;
      data = await answer.json();
    } catch (err) {
      return; // a missed tick is retried by the next one
    }
    let live = false;
    for (const box of boxes) {
      const item = data[box.dataset.progress];
      if (!item) continue;
      if (item.state !== "finished") live = true;
      const bar = box.querySelector("progress");
      bar.max = item.total || 1;
      bar.value = item.done;
      box.querySelector(".progress-text").textContent =
        `${fmt(item.done)} / ${fmt(item.total)}` + (item.total ? ` (${item.percent.toFixed(1)} %)` : "");
      const id = box.dataset.progress;
      updateStatusBars(document.querySelector(`[data-bars-for="${id}"]`), item.by_status, fmt);
      const own = document.querySelector(`[data-live-for="${id}"]`);
      if (own && own.textContent !== item.state) {
        // A mailing's page: its controls and messages depend on the state; show them anew.
        window.location.reload();
        return;
      }
      const row = box.closest("[data-mailing]");
      const state = row ? row.querySelector("[data-state]") : null;
      if (state && state.textContent !== item.state) {
        state.textContent = item.state;
        state.className = `state state-${item.state}`;
      }
    }
    if (!live) clearInterval(timer); // everything shown has finished: nothing will move
  };
  timer = setInterval(tick, 2000);
  tick();
}

function showNotice(text) {
  let notice = document.querySelector("main > .notice");
  if (!notice) {
    notice = document.createElement("p");
    notice.className = "notice";
    notice.setAttribute("role", "status");
    document.querySelector("main").prepend(notice);
  }
  notice.textContent = text;
}

function updateStatusBars(chart, byStatus, fmt) {
  if (!chart || !byStatus) return;
  const top = Math.max(1, ...Object.values(byStatus));
  for (const bar of chart.querySelectorAll(".bar[data-status]")) {
    const count = byStatus[bar.dataset.status] || 0;
    const meter = bar.querySelector("progress");
    meter.max = top;
    meter.value = count;
    meter.setAttribute("aria-label", `${bar.dataset.status}: ${count}`);
    bar.querySelector(".bar-value").textContent = fmt(count);
  }
}

function audiencePreview() {
  const inputs = document.querySelectorAll("[data-audience]");
  const out = document.getElementById("audience-count");
  if (!inputs.length || !out) return;
  let timer = null;
  const update = async () => {
    const params = new URLSearchParams();
    for (const input of inputs) params.set(input.name, input.value);
    try {
      const answer = await fetch(`/admin/audience?${params}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (answer.ok) out.textContent = (await answer.json()).count.toLocaleString("en");
    } catch (err) {
      out.textContent = "?";
    }
  };
  for (const input of inputs) {
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(update, 300);
    });
  }
  update();
}

function confirmations() {
  for (const form of document.querySelectorAll("form[method=post]")) {
    form.addEventListener("submit", (event) => {
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
        event.preventDefault();
        return;
      }
      // One submission per click: a double click must not post the form twice.
      if (form.dataset.sent) {
        event.preventDefault();
        return;
      }
      form.dataset.sent = "1";
      for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = true;
    });
  }
  for (const link of document.querySelectorAll("[data-back]")) {
    link.addEventListener("click", (event) => {
      if (history.length > 1) {
        event.preventDefault();
        history.back();
      }
    });
  }
}

function defaultZone() {
  const field = document.querySelector("[data-default-zone]");
  const form = document.getElementById("mailing-form");
  // Only a new mailing takes the browser's zone; an edit shows its stored times in UTC.
  if (!field || !form || form.action.endsWith("/edit") || field.value !== "UTC") return;
  if (form.querySelector("input[name=starts_at]").value) return;
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  } catch (err) {
    field.value = "UTC";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  pollProgress();
  audiencePreview();
  confirmations();
  defaultZone();
});
window.heraldCsrfToken = csrfToken;

// A page restored from the back-forward cache keeps its disabled buttons: enable them again.
window.addEventListener("pageshow", (event) => {
  if (!event.persisted) return;
  for (const form of document.querySelectorAll("form[data-sent]")) {
    delete form.dataset.sent;
    for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = false;
  }
});
