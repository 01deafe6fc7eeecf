/**
 * The report's page script (inline, plain ES2017). Events are delegated: one listener on the
 * tree and one on the document, whatever the tree's size. Untrusted text reaches the DOM only
 * through `textContent`, and without bidirectional overrides and isolates (`plain`), which would
 * show the rest of a rationale or a strategy's value reversed; its controls as `\u` escapes, as the
 * server-side text (`visibleControls`).
 */
export const SCRIPT = String.raw`(function () {
"use strict";
var data = JSON.parse(document.getElementById("trex-data").textContent);
var nodes = data.nodes;
var svg = document.getElementById("tree");
var ring = document.getElementById("sel-ring");
var selPath = document.getElementById("sel-path");
var panel = document.getElementById("details");
var tip = document.getElementById("tip");
var SVGNS = "http://www.w3.org/2000/svg";
var radius = Number(svg.getAttribute("data-r"));
var children = new Array(nodes.length).fill(0);
for (var k = 0; k < nodes.length; k++) if (nodes[k].p >= 0) children[nodes[k].p]++;
var home = svg.getAttribute("viewBox").split(" ").map(Number);
var vb = home.slice();

function plain(text) {
  return String(text).replace(/[\u200E\u200F\u202A-\u202E\u2066-\u2069]/g, "").replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]/g, function (c) {
    return "\\u" + ("000" + c.charCodeAt(0).toString(16)).slice(-4);
  });
}
function el(tag, cls, text) {
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = plain(text);
  return e;
}
function num(v) {
  if (typeof v !== "number") return String(v);
  if (v === 0 || !isFinite(v)) return String(v);
  var a = Math.abs(v);
  return a >= 1e6 || a < 1e-4 ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}
function duration(s) {
  if (s < 90) return Math.round(s) + "s";
  if (s < 5400) return Math.round(s / 60) + "m";
  return (s / 3600).toFixed(1) + "h";
}

// ---- pan and zoom: the viewBox is the camera ----
// Zoomed out, nodes grow (in user units) so that each stays visible: one CSS rule, not 5,000 attributes.
var zoomStyle = document.createElement("style");
document.head.appendChild(zoomStyle);
function applyView() {
  svg.setAttribute("viewBox", vb.join(" "));
  var s = Math.max(1, 2.5 / (radius * svg.getScreenCTM().a));
  zoomStyle.textContent = s > 1
    ? "#tree .node{r:" + radius * s + "px}#tree .best-ring{r:" + (radius + 3.5) * s + "px}#tree .sel-ring{r:" + (radius + 6) * s + "px}"
    : "";
}
function toSvg(cx, cy) {
  var m = svg.getScreenCTM();
  var p = svg.createSVGPoint();
  p.x = cx; p.y = cy;
  return p.matrixTransform(m.inverse());
}
svg.addEventListener("wheel", function (e) {
  e.preventDefault();
  var f = Math.exp(Math.max(-1, Math.min(1, e.deltaY * 0.0015)));
  var p = toSvg(e.clientX, e.clientY);
  vb = [p.x - (p.x - vb[0]) * f, p.y - (p.y - vb[1]) * f, vb[2] * f, vb[3] * f];
  applyView();
}, { passive: false });
var drag = null;
svg.addEventListener("pointerdown", function (e) {
  drag = { x: e.clientX, y: e.clientY, vb: vb.slice(), moved: false, scale: 1 / svg.getScreenCTM().a };
});
window.addEventListener("pointermove", function (e) {
  if (!drag) return;
  var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) return;
  if (!drag.moved) { drag.moved = true; svg.classList.add("dragging"); tip.hidden = true; }
  vb = [drag.vb[0] - dx * drag.scale, drag.vb[1] - dy * drag.scale, vb[2], vb[3]];
  applyView();
});
window.addEventListener("pointerup", function () {
  svg.classList.remove("dragging");
  setTimeout(function () { drag = null; }, 0);
});
function fit() { vb = home.slice(); applyView(); }
function reveal(i) {
  var n = nodes[i];
  var m = svg.getScreenCTM();
  // Zoom in until a node is at least 5px across, then centre it.
  var f = Math.min(1, (m.a * radius) / 5);
  var w = vb[2] * f, h = vb[3] * f;
  vb = [n.x - w / 2, n.y - h / 2, w, h];
  applyView();
}

// ---- tree events (delegated) ----
svg.addEventListener("click", function (e) {
  if (drag && drag.moved) return;
  var t = e.target.closest(".node");
  if (t) select(Number(t.getAttribute("data-i")), false);
});
svg.addEventListener("mouseover", function (e) {
  var t = e.target.closest(".node");
  if (!t || drag) { tip.hidden = true; return; }
  var n = nodes[Number(t.getAttribute("data-i"))];
  tip.textContent = plain(n.id) + " · " + (n.score !== undefined ? num(n.score) : n.state);
  var box = svg.getBoundingClientRect();
  tip.style.left = (e.clientX - box.left + 12) + "px";
  tip.style.top = (e.clientY - box.top + 12) + "px";
  tip.hidden = false;
});
svg.addEventListener("mouseleave", function () { tip.hidden = true; });
document.addEventListener("click", function (e) {
  var t = e.target.closest("[data-node]");
  if (!t) return;
  e.preventDefault();
  select(Number(t.getAttribute("data-node")), true);
});
document.getElementById("fit").addEventListener("click", fit);
document.getElementById("goto-best").addEventListener("click", function () { if (data.best >= 0) select(data.best, true); });
var copy = document.getElementById("copy-best");
if (copy) copy.addEventListener("click", function () {
  var text = document.getElementById("best-json").textContent;
  function done(ok) {
    copy.textContent = ok ? "Copied" : "Copy failed";
    copy.setAttribute("data-copied", ok ? "yes" : "no");
    setTimeout(function () { copy.textContent = "Copy JSON"; }, 1600);
  }
  function fallback() {
    var area = document.createElement("textarea");
    area.value = text;
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (err) { ok = false; }
    area.remove();
    done(ok);
  }
  if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(function () { done(true); }, fallback);
  else fallback();
});

// ---- strategy diff ----
// A node's strategy is embedded as its changes from its parent's (path index, JSON text or null
// for a path it lacks): rebuilt here from the task's default down the node's path.
function flatOf(i) {
  var chain = [];
  for (var j = i; j >= 0; j = nodes[j].p) chain.push(j);
  var vals = new Array(data.paths.length).fill(null);
  var base = data.base || [];
  for (var b = 0; b < base.length; b += 2) vals[base[b]] = base[b + 1];
  for (var k = chain.length - 1; k >= 0; k--) {
    var d = nodes[chain[k]].d;
    for (var q = 0; q < d.length; q += 2) vals[d[q]] = d[q + 1];
  }
  var out = {};
  for (var v = 0; v < vals.length; v++) if (vals[v] !== null) out[data.paths[v]] = vals[v];
  return out;
}
function diffTable(n, i) {
  var mine = flatOf(i);
  var theirs = n.p >= 0 ? flatOf(n.p) : data.base ? flatOf(-1) : null;
  var wrap = el("div");
  var changed = el("table"), same = el("table");
  var head = el("tr");
  head.appendChild(el("th", "", "field"));
  head.appendChild(el("th", "", theirs ? (n.p >= 0 ? "parent" : "default") : ""));
  head.appendChild(el("th", "", "this node"));
  changed.appendChild(head);
  var keys = Object.keys(mine);
  if (theirs) for (var key in theirs) if (!(key in mine)) keys.push(key);
  var nChanged = 0, nSame = 0;
  keys.forEach(function (key) {
    var a = theirs ? theirs[key] : undefined, b = mine[key];
    var kind = !theirs ? "" : a === b ? "same" : a === undefined ? "added" : b === undefined ? "removed" : "changed";
    var tr = el("tr", kind);
    tr.setAttribute("data-field", key);
    tr.appendChild(el("td", "path", key));
    tr.appendChild(el("td", kind === "same" ? "" : "old", a === undefined ? "" : a));
    tr.appendChild(el("td", "new", b === undefined ? "" : b));
    if (kind === "same") { same.appendChild(tr); nSame++; } else { changed.appendChild(tr); nChanged++; }
  });
  if (theirs && nChanged === 0) wrap.appendChild(el("p", "muted", "Same executable strategy as its " + (n.p >= 0 ? "parent." : "default.")));
  else wrap.appendChild(changed);
  if (nSame > 0) {
    var more = el("details");
    more.appendChild(el("summary", "", nSame + " unchanged field" + (nSame === 1 ? "" : "s")));
    more.appendChild(same);
    wrap.appendChild(more);
  }
  return wrap;
}

// ---- learning curves ----
var PALETTE = ["#2563eb", "#e5484d", "#12a150", "#9333ea", "#d97706", "#0891b2"];
function curveCharts(series) {
  var byName = {};
  series.forEach(function (s) { (byName[s.name] || (byName[s.name] = [])).push(s); });
  var frag = document.createDocumentFragment();
  Object.keys(byName).forEach(function (name) {
    var splits = byName[name];
    var x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    splits.forEach(function (sr) {
      sr.steps.forEach(function (v) { x0 = Math.min(x0, v); x1 = Math.max(x1, v); });
      sr.values.forEach(function (v) { y0 = Math.min(y0, v); y1 = Math.max(y1, v); });
    });
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) { y1 += 1; y0 -= 1; }
    var W = 360, H = 120, L = 48, R = 8, T = 16, B = 18;
    var s = document.createElementNS(SVGNS, "svg");
    s.setAttribute("viewBox", "0 0 " + W + " " + H);
    s.setAttribute("class", "curve");
    function add(tag, attrs, text) {
      var e = document.createElementNS(SVGNS, tag);
      for (var a in attrs) e.setAttribute(a, attrs[a]);
      if (text !== undefined) e.textContent = plain(text);
      s.appendChild(e);
      return e;
    }
    add("line", { class: "ax", x1: L, x2: W - R, y1: H - B, y2: H - B });
    add("line", { class: "ax", x1: L, x2: L, y1: T, y2: H - B });
    add("text", { x: L - 4, y: T + 4, "text-anchor": "end" }, num(y1));
    add("text", { x: L - 4, y: H - B, "text-anchor": "end" }, num(y0));
    add("text", { x: L, y: H - 4 }, "step " + num(x0));
    add("text", { x: W - R, y: H - 4, "text-anchor": "end" }, num(x1));
    var label = add("text", { x: L + 4, y: 10 }, name);
    label.style.fontWeight = "600";
    splits.forEach(function (sr, j) {
      var order = sr.steps.map(function (_, i) { return i; }).sort(function (a, b) { return sr.steps[a] - sr.steps[b]; });
      var d = order.map(function (i, k) {
        var x = L + ((sr.steps[i] - x0) / (x1 - x0)) * (W - L - R);
        var y = H - B - ((sr.values[i] - y0) / (y1 - y0)) * (H - T - B);
        return (k === 0 ? "M" : "L") + x.toFixed(1) + " " + y.toFixed(1);
      }).join("");
      var colour = PALETTE[j % PALETTE.length];
      add("path", { class: "ln", d: d, stroke: colour });
      add("text", { x: W - R - 60 * j, y: 10, "text-anchor": "end", fill: colour }, sr.split);
    });
    frag.appendChild(s);
  });
  return frag;
}

// ---- details panel ----
function kv(pairs) {
  var dl = el("dl", "kv");
  pairs.forEach(function (p) {
    if (p[1] === undefined || p[1] === null || p[1] === "") return;
    dl.appendChild(el("dt", "", p[0]));
    var dd = el("dd");
    if (p[1] instanceof Node) dd.appendChild(p[1]); else dd.textContent = plain(p[1]);
    dl.appendChild(dd);
  });
  return dl;
}
function nodeLink(i) {
  var a = el("a", "", nodes[i].id);
  a.href = "#";
  a.setAttribute("data-node", String(i));
  return a;
}
function details(i) {
  var n = nodes[i];
  var box = document.createDocumentFragment();
  var head = el("div", "d-head");
  head.appendChild(el("h2", "", n.id));
  head.appendChild(el("span", "badge " + n.state, n.state));
  if (i === data.best) head.appendChild(el("span", "badge best", "best"));
  head.appendChild(el("span", "d-score", n.score !== undefined ? num(n.score) : ""));
  box.appendChild(head);
  var c = Object.assign({ gpuSeconds: 0, wallSeconds: 0, dollars: 0, inputTokens: 0, outputTokens: 0 }, n.cost);
  box.appendChild(kv([
    ["parent", n.p >= 0 ? nodeLink(n.p) : "root (the task)"],
    ["depth", n.depth],
    ["children", children[i]],
    ["proposed", "+" + duration((n.proposedAt - data.startedAt) / 1000)],
    ["duration", n.finishedAt !== undefined ? duration((n.finishedAt - n.proposedAt) / 1000) : undefined],
    ["prior", n.prior],
    ["reused from", n.reusedFrom],
    ["waiting for", n.waiting],
    ["unreachable", n.unreachable],
    ["withdrawn", n.withdrawn ? "from the backend's queue by a stop; runs on resume" : undefined],
    ["fingerprint", n.fingerprint]
  ]));
  if (n.rationale) {
    box.appendChild(el("h3", "", "Rationale"));
    box.appendChild(el("p", "rationale", n.rationale));
  }
  if (n.reason) { box.appendChild(el("h3", "", n.state + " because")); box.appendChild(el("p", "", n.reason)); }
  if (n.failure) {
    box.appendChild(el("h3", "", "Failure"));
    var f = el("div", "failure");
    f.appendChild(el("b", "", n.failure.kind));
    f.appendChild(document.createTextNode(" " + plain(n.failure.message) + (n.failure.exitCode !== undefined ? " (exit " + n.failure.exitCode + ")" : "")));
    box.appendChild(f);
  }
  box.appendChild(el("h3", "", n.p >= 0 ? "Strategy vs parent" : "Strategy"));
  box.appendChild(diffTable(n, i));
  var metrics = n.metrics || {};
  var names = Object.keys(metrics);
  if (names.length > 0) {
    box.appendChild(el("h3", "", "Metrics"));
    var t = el("table", "metrics");
    names.forEach(function (name) {
      var tr = el("tr", name === data.metric.name ? "primary" : "");
      tr.appendChild(el("td", "path", name));
      tr.appendChild(el("td", "num", num(metrics[name])));
      t.appendChild(tr);
    });
    box.appendChild(t);
  }
  if (n.curves && n.curves.length > 0) { box.appendChild(el("h3", "", "Learning curves")); box.appendChild(curveCharts(n.curves)); }
  box.appendChild(el("h3", "", "Cost"));
  box.appendChild(kv([
    ["GPU time", duration(c.gpuSeconds)], ["wall time", duration(c.wallSeconds)],
    ["dollars", "$" + c.dollars.toFixed(2)], ["tokens", (c.inputTokens + c.outputTokens).toLocaleString("en-US")]
  ]));
  if (n.summary) { box.appendChild(el("h3", "", "Summary")); box.appendChild(el("p", "", n.summary)); }
  var tail = (n.failure ? n.failure.logTail : []).concat(n.logs || []);
  if (tail.length > 0) { box.appendChild(el("h3", "", "Log tail")); box.appendChild(el("pre", "logs", tail.join("\n"))); }
  panel.replaceChildren(box);
  panel.setAttribute("data-selected", n.id);
  panel.scrollTop = 0;
}

function select(i, show) {
  if (!(i >= 0 && i < nodes.length)) return;
  var n = nodes[i];
  ring.setAttribute("cx", n.x);
  ring.setAttribute("cy", n.y);
  ring.setAttribute("visibility", "visible");
  var d = "M" + n.x + " " + n.y;
  for (var j = n.p; j >= 0; j = nodes[j].p) d += "L" + nodes[j].x + " " + nodes[j].y;
  selPath.setAttribute("d", d);
  var old = document.querySelectorAll(".chart .pt.sel");
  for (var q = 0; q < old.length; q++) old[q].classList.remove("sel");
  var pts = document.querySelectorAll('.chart .pt[data-node="' + i + '"]');
  for (var r = 0; r < pts.length; r++) pts[r].classList.add("sel");
  details(i);
  svg.setAttribute("data-selected", String(i));
  if (show) {
    reveal(i);
    var box = svg.getBoundingClientRect();
    if (box.bottom < 0 || box.top > window.innerHeight) svg.scrollIntoView({ block: "center", behavior: "instant" });
  }
}

applyView();
if (data.best >= 0) select(data.best, false);
document.body.setAttribute("data-ready", "1");
})();
`
