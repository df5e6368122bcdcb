// paperalerts: the little JavaScript the pages use. Everything works without it, except the
// live feedback: rule validation while typing, the rule preview, the browser's timezone.
"use strict";

(function () {
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // Fill empty timezone fields with the browser's zone. The list offers canonical zones only;
  // a browser reporting another valid name (an old alias such as "Asia/Calcutta") gets it added.
  document.querySelectorAll("[data-browser-tz]").forEach(function (el) {
    var tz = "";
    try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { tz = ""; }
    if (!el.value && tz) {
      if (el.tagName === "SELECT" && !el.querySelector('option[value="' + tz + '"]')) {
        var opt = document.createElement("option");
        opt.value = tz;
        opt.textContent = tz.replace(/_/g, " ");
        el.insertBefore(opt, el.firstChild);
      }
      el.value = tz;
    }
  });

  // Show a schedule field only for the frequencies it applies to (data-show-for="weekly").
  document.querySelectorAll("[data-show-for]").forEach(function (field) {
    var scope = field.closest("form") || document;
    var freq = scope.querySelector('select[name="frequency"]');
    if (!freq) return;
    var wanted = field.getAttribute("data-show-for").split(" ");
    function sync() { field.hidden = wanted.indexOf(freq.value) < 0; }
    freq.addEventListener("change", sync);
    sync();
  });

  // Ask before destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });

  function caret(line, position) {
    var pre = document.createElement("pre");
    pre.className = "caret";
    pre.appendChild(document.createTextNode(line + "\n" + " ".repeat(position)));
    var at = document.createElement("span");
    at.className = "at";
    at.textContent = "^";
    pre.appendChild(at);
    return pre;
  }

  // `bad`: every failing check as {r: verdict, line: text, no: line number or 0}.
  function showCheck(out, input, bad, okText) {
    out.textContent = "";
    if (!bad.length) {
      out.className = "check ok";
      out.textContent = "\u2713 valid" + (okText ? ": " + okText : "");
      input.removeAttribute("aria-invalid");
      return;
    }
    out.className = "check bad";
    input.setAttribute("aria-invalid", "true");
    bad.forEach(function (c) {
      var msg = document.createElement("div");
      msg.className = "message";
      msg.textContent = (c.no ? "line " + c.no + ": " : "") + c.r.error + " at " +
        c.r.position + (c.r.hint ? " \u2014 " + c.r.hint : "");
      out.appendChild(msg);
      out.appendChild(caret(c.line, c.r.position));
    });
  }

  function validate(text) {
    return fetch("/validate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query: text }),
    }).then(function (r) { return r.json(); });
  }

  // Live validation: data-validate="one" (a single rule) or "lines" (one rule per line). The
  // server's error for the field (data-rule-error, after a failed submit) is the one shown
  // until the text changes; from then on the live check replaces it.
  document.querySelectorAll("[data-validate]").forEach(function (input) {
    var out = document.getElementById(input.getAttribute("data-check"));
    if (!out) return;
    var timer = null, seq = 0;
    function serverErrors() {
      return input.form ? input.form.querySelectorAll("[data-rule-error]") : [];
    }
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
          var bad = all.filter(function (c) { return !c.r.ok; });
          showCheck(out, input, bad, all.length + " rule" + (all.length === 1 ? "" : "s"));
        });
        return;
      }
      if (!text.trim()) { out.textContent = ""; out.className = "check"; return; }
      validate(text).then(function (r) {
        if (mine === seq) showCheck(out, input, r.ok ? [] : [{ r: r, line: text, no: 0 }],
                                    r.normalized);
      });
    }
    input.addEventListener("input", function () {
      serverErrors().forEach(function (el) { el.remove(); });
      clearTimeout(timer);
      timer = setTimeout(run, 200);
    });
    if (input.value.trim() && !serverErrors().length) run();
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
