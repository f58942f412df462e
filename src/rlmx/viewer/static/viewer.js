// rlmx trace viewer: lazy turn bodies, more sub-calls, citation panel, jump to a turn.
// No dependencies, no network: everything it shows is already in the page.
(function () {
  "use strict";

  // A turn's body is an inert <template> until the turn is first opened.
  function fill(details) {
    var tpl = details.querySelector(":scope > template.lazy");
    if (tpl) {
      details.appendChild(tpl.content.cloneNode(true));
      tpl.remove();
    }
  }

  document.addEventListener("toggle", function (ev) {
    var el = ev.target;
    if (el instanceof HTMLDetailsElement && el.open && el.classList.contains("turn")) fill(el);
  }, true);

  // Open (and fill) the turn or execution an anchor points at.
  function reveal(hash) {
    if (!hash || hash.length < 2) return;
    var el = document.getElementById(decodeURIComponent(hash.slice(1)));
    if (!el) return;
    if (el instanceof HTMLDetailsElement) {
      fill(el);
      el.open = true;
    }
    el.scrollIntoView({ block: "start" });
  }
  window.addEventListener("hashchange", function () { reveal(location.hash); });

  var panel = document.getElementById("cite-panel");
  var body = panel.querySelector(".cite-body");

  function showCitation(id) {
    var tpl = document.getElementById("tpl-" + id);
    if (!tpl) return;
    body.replaceChildren(tpl.content.cloneNode(true));
    panel.hidden = false;
    panel.dataset.cite = id;
    var mark = body.querySelector("mark.cited");
    if (mark) mark.scrollIntoView({ block: "center" });
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target instanceof Element ? ev.target : null;
    if (!t) return;
    var cite = t.closest("button.cite");
    if (cite) {
      document.querySelectorAll("button.cite.active").forEach(function (b) { b.classList.remove("active"); });
      cite.classList.add("active");
      showCitation(cite.dataset.cite);
      return;
    }
    if (t.closest("#cite-panel .close")) {
      panel.hidden = true;
      return;
    }
    var more = t.closest("button.more");
    if (more) {
      var next = more.parentElement.querySelector(":scope > template.more-subcalls");
      if (next) {
        var n = next.content.querySelectorAll(":scope > details.subcall").length;
        more.parentElement.insertBefore(next.content.cloneNode(true), next);
        next.remove();
        var shown = Number(more.dataset.shown) + n;
        var total = Number(more.parentElement.dataset.total);
        more.dataset.shown = String(shown);
        more.textContent = "Show more sub-calls (" + shown + " of " + total + " shown)";
      }
      if (!more.parentElement.querySelector(":scope > template.more-subcalls")) more.remove();
      return;
    }
    var seg = t.closest("a.seg, a.child, a.node, a.tl-row, p.parent a");
    if (seg && seg.getAttribute("href") === location.hash) reveal(location.hash);
  });

  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") panel.hidden = true;
  });

  reveal(location.hash);
})();
