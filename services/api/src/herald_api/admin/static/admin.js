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
  const tick = async () => {
    try {
      const answer = await fetch(`/admin/mailings/progress?ids=${ids}`, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!answer.ok) return;
      const data = await answer.json();
      for (const box of boxes) {
        const item = data[box.dataset.progress];
        if (!item) continue;
        const bar = box.querySelector("progress");
        bar.max = item.total || 1;
        bar.value = item.done;
        const fmt = (n) => n.toLocaleString("en").replace(/,/g, "\u202f");
        box.querySelector(".progress-text").textContent =
          `${fmt(item.done)} / ${fmt(item.total)}` + (item.total ? ` (${item.percent.toFixed(1)} %)` : "");
        const row = box.closest("[data-mailing]");
        const state = row ? row.querySelector("[data-state]") : document.getElementById("state");
        if (!row) updateStatusBars(item.by_status, fmt);
        if (state && state.textContent !== item.state) {
          if (!row) {
            // A mailing's page: its controls and messages depend on the state; show them anew.
            window.location.reload();
            return;
          }
          state.textContent = item.state;
          state.className = `state state-${item.state}`;
        }
      }
    } catch (err) {
      // A missed tick is retried by the next one.
    }
  };
  tick();
  setInterval(tick, 2000);
}

function updateStatusBars(byStatus, fmt) {
  const bars = document.querySelectorAll(".bar[data-status]");
  if (!bars.length || !byStatus) return;
  const top = Math.max(1, ...Object.values(byStatus));
  for (const bar of bars) {
    const count = byStatus[bar.dataset.status] || 0;
    const meter = bar.querySelector("progress");
    meter.max = top;
    meter.value = count;
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
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
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
