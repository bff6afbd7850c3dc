// Weft UI: the one script. Pages are complete without it; it only keeps live regions fresh.
// A region marked data-live="URL" data-running="true" is fetched again from URL every two
// seconds and replaced, until the fresh copy says data-running="false" (its run ended) or
// the page is hidden. Keyboard focus inside the region is kept on the same element.
"use strict";
(function () {
  const PERIOD_MS = 2000;
  document.documentElement.dataset.js = "on";
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  function focusKey(el) {
    const f = document.activeElement;
    if (!f || !el.contains(f)) return null;
    return f.id || f.getAttribute("href") || f.getAttribute("value");
  }

  function restoreFocus(el, key) {
    if (!key) return;
    for (const c of el.querySelectorAll("[id], [href], [value]")) {
      if (c.id === key || c.getAttribute("href") === key || c.getAttribute("value") === key) { c.focus(); return; }
    }
  }

  async function follow(el) {
    while (el.dataset.running === "true") {
      await sleep(PERIOD_MS);
      if (document.hidden) continue;
      let html;
      try {
        const r = await fetch(el.dataset.live, { headers: { "Accept": "text/html" } });
        if (!r.ok) continue;
        html = await r.text();
      } catch (_) { continue; }
      const t = document.createElement("template");
      t.innerHTML = html.trim();
      const fresh = t.content.firstElementChild;
      if (!fresh) continue;
      // Checked boxes (runs picked for comparison) survive the refresh.
      const picked = new Set([...el.querySelectorAll("input[type=checkbox]:checked")].map((c) => c.value));
      for (const c of fresh.querySelectorAll("input[type=checkbox]")) c.checked = picked.has(c.value);
      const key = focusKey(el);
      el.replaceWith(fresh);
      restoreFocus(fresh, key);
      el = fresh;
    }
  }

  document.querySelectorAll("[data-live]").forEach(follow);
})();
