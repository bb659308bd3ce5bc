/* omr review: keyboard control of the card screen and the by-question mode.
   Decisions are POSTed with htmx (the server answers with the new panel); every
   request carries the CSRF token of the page's <meta name="csrf">. */
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf"]').content;
  document.body.addEventListener("htmx:configRequest", (e) => { e.detail.headers["X-CSRF-Token"] = csrf; });

  function luhnValid(s) {
    if (!/^\d{9}$/.test(s)) return false;
    let sum = 0;
    for (let i = 0; i < 9; i++) {
      let d = +s[8 - i];
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }
  function luhnDigit(body) {
    let sum = 0;
    for (let i = 0; i < body.length; i++) {
      let d = +body[body.length - 1 - i];
      if (i % 2 === 0) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return String((10 - sum % 10) % 10);
  }

  let active = 0;
  let pick = null;
  const panel = () => document.getElementById("panel");
  const tilesBox = () => document.getElementById("tiles");
  const items = () => Array.from((panel() || tilesBox() || document).querySelectorAll(".item"));

  function setActive(i, allowNone) {
    const list = items();
    if (!list.length) return;
    if (allowNone && i >= list.length) {  // everything decided: no item active, keys act on the card
      active = list.length;
      pick = null;
      list.forEach((el) => el.classList.remove("active"));
      if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
      return;
    }
    active = Math.max(0, Math.min(i, list.length - 1));
    pick = null;
    list.forEach((el, k) => {
      el.classList.toggle("active", k === active);
      const p = el.querySelector(".pick"); if (p) p.textContent = "";
    });
    const el = list[active];
    el.scrollIntoView({ block: "nearest" });
    document.querySelectorAll(".q-focus").forEach((r) => r.classList.toggle("on", r.dataset.question === el.dataset.question));
    const input = el.querySelector(".code-input");
    if (input) input.focus(); else if (document.activeElement && document.activeElement.classList.contains("code-input")) document.activeElement.blur();
  }

  function postPanel(action, values) {
    const p = panel();
    values.content_hash = p.dataset.hash;
    values.reason = p.dataset.reason || "";
    const extra = p.dataset.extra ? "?" + p.dataset.extra.split(",").map((q) => "q=" + q).join("&") : "";
    return htmx.ajax("POST", `/card/${p.dataset.card}/${action}${extra}`, { target: "#panel", swap: "outerHTML", values });
  }

  function allowed(el) {
    const kind = el.dataset.kind, field = el.dataset.field;
    if (field === "version") return (panel().dataset.versions || "");
    if (field && field.startsWith("answer:") || el.classList.contains("tile")) {
      const opts = (panel() || tilesBox()).dataset.options || "ABCDE";
      return opts + "-*";
    }
    return "";
  }

  function showPick(el, value) {
    pick = value;
    const p = el.querySelector(".pick");
    if (p) p.textContent = "→ " + value + "  (Enter confirms)";
  }

  function onCodeKey(e, input) {
    if (e.key === "Escape") { input.blur(); e.preventDefault(); return; }
    if (e.key === "Enter") {
      e.preventDefault();
      if (luhnValid(input.value)) postPanel("decide", { field: "code_number", value: input.value });
      else document.getElementById("luhn").textContent = "✗ not a valid code number";
    }
  }

  document.addEventListener("input", (e) => {
    if (!e.target.classList.contains("code-input")) return;
    const v = e.target.value.replace(/\D/g, "").slice(0, 9);
    e.target.value = v;
    const out = document.getElementById("luhn");
    out.className = "luhn";
    if (v.length < 9) { out.textContent = `${v.length}/9 digits` + (v.length === 8 ? ` (check digit would be ${luhnDigit(v)})` : ""); return; }
    const ok = luhnValid(v);
    out.classList.add(ok ? "ok" : "bad");
    out.textContent = ok ? "✓ Luhn check digit right — Enter records it" : `✗ Luhn check fails: the last digit should be ${luhnDigit(v.slice(0, 8))}`;
  });

  function gotoQuestion() {
    const p = panel();
    const n = parseInt(window.prompt(`Question to look at or correct (1–${p.dataset.questions}):`) || "", 10);
    if (!n) return;
    const extra = new Set((p.dataset.extra || "").split(",").filter(Boolean));
    extra.add(String(n));
    const params = new URLSearchParams();
    extra.forEach((q) => params.append("q", q));
    if (p.dataset.reason) params.set("reason", p.dataset.reason);
    window.location.search = params.toString();
  }

  function cardKey(e) {
    const list = items();
    const el = list[active];
    const key = e.key;
    const upper = key.length === 1 ? key.toUpperCase() : key;
    if (key === "Enter") {
      e.preventDefault();
      if (el && pick !== null) { postPanel("decide", { field: el.dataset.field, value: pick }); return; }
      if (panel().dataset.canFinalise === "1") postPanel("finalise", {});
      else if (el) setActive(active + 1);
      return;
    }
    if (key === "ArrowDown" || upper === "J") { e.preventDefault(); setActive(active + 1); return; }
    if (key === "ArrowUp" || upper === "K") { e.preventDefault(); setActive(active - 1); return; }
    if (el && upper.length === 1 && allowed(el).includes(upper)) { e.preventDefault(); showPick(el, upper); return; }
    if (upper === "F") { e.preventDefault(); postPanel("finalise", {}); return; }
    if (upper === "P") { e.preventDefault(); postPanel("postpone", {}); return; }
    if (upper === "U") { e.preventDefault(); postPanel("undo", {}); return; }
    if (upper === "R" && document.getElementById("rescanned")) { e.preventDefault(); postPanel("carry", {}); return; }
    if (upper === "G") { e.preventDefault(); gotoQuestion(); return; }
  }

  function tileKey(e) {
    const list = items();
    const el = list[active];
    const key = e.key, upper = key.length === 1 ? key.toUpperCase() : key;
    if (key === "ArrowDown" || key === "ArrowRight" || upper === "J") { e.preventDefault(); setActive(active + 1); return; }
    if (key === "ArrowUp" || key === "ArrowLeft" || upper === "K") { e.preventDefault(); setActive(active - 1); return; }
    if (!el) return;
    if (upper.length === 1 && allowed(el).includes(upper)) { e.preventDefault(); showPick(el, upper); return; }
    if (key === "Enter" && pick !== null) {
      e.preventDefault();
      const q = tilesBox().dataset.question;
      htmx.ajax("POST", `/question/${q}/decide`, { target: "#tiles", swap: "outerHTML",
        values: { card: el.dataset.card, content_hash: el.dataset.hash, value: pick } });
    }
  }

  // keys pressed while a decision is on its way wait for the new panel, then apply in order
  let busy = false;
  const pending = [];
  document.body.addEventListener("htmx:beforeRequest", () => { busy = true; });
  document.body.addEventListener("htmx:afterRequest", (e) => { if (!e.detail.successful) busy = false; });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (busy && !(e.target.classList && e.target.classList.contains("code-input"))) {
      e.preventDefault();
      pending.push(e.key);
      return;
    }
    handleKey(e);
  });

  function handleKey(e) {
    const t = e.target;
    if (t.classList && t.classList.contains("code-input")) { onCodeKey(e, t); return; }
    if (t.matches && t.matches("input, textarea, select")) return;
    if (panel()) { cardKey(e); return; }
    if (tilesBox()) { tileKey(e); return; }
    const start = document.getElementById("start");
    if (start && e.key === "Enter") { e.preventDefault(); window.location = start.href; }
  }

  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-action]");
    if (b && panel()) {
      if (b.dataset.action === "goto") gotoQuestion();
      else postPanel(b.dataset.action, {});
      return;
    }
    const it = e.target.closest(".item");
    if (it) setActive(items().indexOf(it));
  });

  function init() {
    const p = panel();
    if (p) setActive(parseInt(p.dataset.active || "0", 10), true);
    else if (tilesBox()) setActive(parseInt(tilesBox().dataset.active || "0", 10), true);
    // replayed once htmx has finished with the swap (a request started inside its
    // settle handler can be dropped)
    window.setTimeout(() => {
      busy = false;
      while (pending.length && !busy) {
        const key = pending.shift();
        handleKey({ key, target: document.activeElement || document.body, preventDefault() {} });
      }
      document.body.dataset.ready = "1";
    }, 0);
  }
  document.body.addEventListener("htmx:afterSettle", init);
  init();
})();
