// paperalerts: the little JavaScript the pages use. Everything works without it, except the
// live feedback: rule validation while typing, the rule preview, the browser's timezone.
"use strict";

(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Fill empty timezone fields with the browser's zone.
  document.querySelectorAll("[data-browser-tz]").forEach(function (el) {
    var tz = "";
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { tz = ""; }
    if (!el.value && tz) {
      if (el.tagName === "SELECT" && !el.querySelector('option[value="' + tz + '"]')) return;
      el.value = tz;
    }
  });

  // Ask before destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });

  function showCheck(out, input, result, line, lineNo) {
    out.textContent = "";
    if (result.ok) {
      out.className = "check ok";
      out.textContent = "\u2713 valid" + (result.normalized ? ": " + result.normalized : "");
      input.removeAttribute("aria-invalid");
      return;
    }
    out.className = "check bad";
    input.setAttribute("aria-invalid", "true");
    var msg = document.createElement("div");
    msg.className = "message";
    msg.textContent = (lineNo ? "line " + lineNo + ": " : "") + result.error + " at " +
      result.position + (result.hint ? " \u2014 " + result.hint : "");
    out.appendChild(msg);
    var pre = document.createElement("pre");
    pre.className = "caret";
    pre.appendChild(document.createTextNode(line + "\n" + " ".repeat(result.position)));
    var at = document.createElement("span");
    at.className = "at";
    at.textContent = "^";
    pre.appendChild(at);
    out.appendChild(pre);
  }

  function validate(text) {
    return fetch("/validate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: text }),
    }).then(function (r) { return r.json(); });
  }

  // Live validation: data-validate="one" (a single rule) or "lines" (one rule per line).
  document.querySelectorAll("[data-validate]").forEach(function (input) {
    var out = document.getElementById(input.getAttribute("data-check"));
    if (!out) return;
    var timer = null, seq = 0;
    function run() {
      var mine = ++seq;
      var text = input.value;
      if (input.getAttribute("data-validate") === "lines") {
        var lines = text.split("\n");
        var checks = [];
        lines.forEach(function (l, i) {
          if (l.trim()) checks.push(validate(l.trim()).then(function (r) {
            return { r: r, line: l.trim(), no: i + 1 };
          }));
        });
        if (!checks.length) { out.textContent = ""; out.className = "check"; return; }
        Promise.all(checks).then(function (all) {
          if (mine !== seq) return;
          var bad = all.filter(function (c) { return !c.r.ok; })[0];
          if (bad) showCheck(out, input, bad.r, bad.line, bad.no);
          else showCheck(out, input, { ok: true, normalized: all.length + " rule" +
            (all.length === 1 ? "" : "s") }, "", 0);
        });
        return;
      }
      if (!text.trim()) { out.textContent = ""; out.className = "check"; return; }
      validate(text).then(function (r) { if (mine === seq) showCheck(out, input, r, text, 0); });
    }
    input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 200); });
    if (input.value.trim()) run();
  });

  // Admin rule preview: POST the rule to /admin/preview, show the returned (escaped) HTML.
  document.querySelectorAll("[data-preview]").forEach(function (button) {
    button.addEventListener("click", function (ev) {
      ev.preventDefault();
      var input = document.getElementById(button.getAttribute("data-preview"));
      var days = document.getElementById(button.getAttribute("data-days"));
      var out = document.getElementById(button.getAttribute("data-target"));
      out.textContent = "Loading\u2026";
      fetch("/admin/preview", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
        body: JSON.stringify({ query: input.value, days: parseInt(days.value, 10) || 7 }),
      }).then(function (r) { return r.text(); }).then(function (html) {
        out.innerHTML = html;  // server-rendered with autoescaping
      });
    });
  });
})();
