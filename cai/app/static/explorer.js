// cai explore: the drawing shared by the live explorer (Panel) and the exported page.
// Plain JavaScript, no imports: draws one record of cai.app.model.Frame.to_json() into a div.

var CAI_ARROWS = [[0, -1], [1, 0], [0, 1], [-1, 0]];   // up, right, down, left as (dx, dy)

function caiFmt(x) {
  if (x === null || x === undefined) { return "-inf"; }
  if (x === 0) { return "0"; }
  var a = Math.abs(x);
  if (a >= 1e-3 && a < 1e6) { return String(Number(x.toPrecision(6))); }
  return x.toExponential(5);
}

function caiColour(u, scheme) {
  // u in [0, 1] -> a colour; "value": dark purple to yellow, "mass": white to blue
  u = Math.max(0, Math.min(1, u));
  var stops = scheme === "mass"
    ? [[255, 255, 255], [158, 202, 225], [33, 113, 181], [8, 48, 107]]
    : [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  var x = u * (stops.length - 1), i = Math.min(Math.floor(x), stops.length - 2), f = x - i;
  var c = [0, 1, 2].map(function (k) { return Math.round(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])); });
  return "rgb(" + c.join(",") + ")";
}

function caiSvg(tag, attrs) {
  var e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (var k in attrs) { e.setAttribute(k, attrs[k]); }
  return e;
}

function caiGrid(rec, arr, opts, onCell) {
  // one panel: a heatmap of arr (per open cell) over the layout, arrows from opts.policy
  var H = rec.rows.length, W = rec.rows[0].length;
  var size = Math.max(14, Math.min(44, Math.floor(300 / Math.max(H, W))));
  var svg = caiSvg("svg", {width: W * size + 2, height: H * size + 2, "class": "cai-grid", "data-panel": opts.key});
  var lo = opts.lo, hi = opts.hi, span = hi - lo > 1e-12 ? hi - lo : 1;
  var index = {};
  rec.cells.forEach(function (rc, i) { index[rc[0] + "," + rc[1]] = i; });
  for (var r = 0; r < H; r++) {
    for (var c = 0; c < W; c++) {
      var ch = rec.rows[r][c], i = index[r + "," + c], fill = "#444";
      if (ch !== "#") { fill = caiColour((arr[i] - lo) / span, opts.scheme); }
      var rect = caiSvg("rect", {x: 1 + c * size, y: 1 + r * size, width: size - 1, height: size - 1, fill: fill,
        stroke: ch === "L" ? "#d62728" : (ch === "G" ? "#2ca02c" : "#bbb"), "stroke-width": (ch === "L" || ch === "G") ? 3 : 1,
        "class": "cai-cell", "data-row": r, "data-col": c, "data-kind": ch});
      if (ch !== "#") {
        var title = caiSvg("title", {});
        title.textContent = "(" + r + "," + c + ") " + ch + ": " + opts.what + " = " + caiFmt(arr[i]);
        rect.appendChild(title);
      }
      (function (rr, cc) { rect.addEventListener("click", function () { if (onCell) { onCell(rr, cc); } }); })(r, c);
      svg.appendChild(rect);
      var cx = 1 + c * size + size / 2, cy = 1 + r * size + size / 2;
      if (ch === "S" || ch === "G" || ch === "L") {
        var lab = caiSvg("text", {x: 3 + c * size, y: 11 + r * size, "font-size": 10, fill: "#000", stroke: "#fff",
          "stroke-width": 2.5, "paint-order": "stroke", "pointer-events": "none"});
        lab.textContent = ch;
        svg.appendChild(lab);
      }
      if (opts.policy && ch !== "#" && ch !== "G" && ch !== "L") {
        for (var a = 0; a < 4; a++) {
          var p = opts.policy[i][a];
          if (p < 0.05) { continue; }
          var len = 0.45 * size * p;
          svg.appendChild(caiSvg("line", {x1: cx, y1: cy, x2: cx + CAI_ARROWS[a][0] * len, y2: cy + CAI_ARROWS[a][1] * len,
            stroke: "#fff", "stroke-width": 1 + 2 * p, "stroke-linecap": "round", "pointer-events": "none"}));
        }
      }
      if (opts.text && ch !== "#" && size >= 34) {
        var tx = caiSvg("text", {x: cx, y: 1 + (r + 1) * size - 3, "font-size": 9, "text-anchor": "middle",
          fill: "#000", stroke: "#fff", "stroke-width": 2.5, "paint-order": "stroke", "pointer-events": "none",
          "class": "cai-cell-value"});
        tx.textContent = Number(arr[i].toPrecision(3));
        svg.appendChild(tx);
      }
    }
  }
  return svg;
}

function caiNumbersTable(rec, methods) {
  var n = rec.numbers, d = rec.definitions;
  var table = document.createElement("table");
  table.className = "cai-numbers";
  table.style.borderCollapse = "collapse";
  table.style.fontSize = "13px";
  function row(cells, head) {
    var tr = document.createElement("tr");
    cells.forEach(function (cell) {
      var td = document.createElement(head ? "th" : "td");
      td.style.padding = "2px 8px";
      td.style.textAlign = "right";
      if (typeof cell === "object") {
        td.textContent = caiFmt(n[cell.key]);
        td.setAttribute("data-key", cell.key);
        td.setAttribute("data-value", n[cell.key] === null ? "-inf" : String(n[cell.key]));
        td.title = d[cell.def];
      } else {
        td.textContent = cell;
        td.style.textAlign = "left";
      }
      tr.appendChild(td);
    });
    table.appendChild(tr);
  }
  row(["number"].concat(methods.map(function (m) { return rec.labels[m]; })), true);
  [["value", "value: sum p0 V_0"], ["elbo", "ELBO(pi)"], ["p_lava", "P(lava), policy in real dynamics"]].forEach(function (k) {
    row([k[1]].concat(methods.map(function (m) { return {key: k[0] + "_" + m, def: k[0]}; })));
  });
  var t2 = document.createElement("table");
  t2.className = "cai-numbers";
  t2.style.fontSize = "13px";
  [["log_evidence", "log evidence log p(O)"], ["max_elbo", "max ELBO"], ["gap", "gap = log evidence - max ELBO"],
   ["p_lava_posterior", "P(lava) under the exact posterior"]].forEach(function (k) {
    var tr = document.createElement("tr");
    var a = document.createElement("td"); a.textContent = k[1]; a.style.padding = "2px 8px";
    var b = document.createElement("td"); b.textContent = caiFmt(n[k[0]]); b.style.padding = "2px 8px";
    b.style.textAlign = "right"; b.setAttribute("data-key", k[0]);
    b.setAttribute("data-value", n[k[0]] === null ? "-inf" : String(n[k[0]]));
    var c = document.createElement("td"); c.textContent = d[k[0]]; c.style.color = "#555"; c.style.fontSize = "11px";
    tr.appendChild(a); tr.appendChild(b); tr.appendChild(c);
    t2.appendChild(tr);
  });
  var box = document.createElement("div");
  box.appendChild(table);
  var defs = document.createElement("div");
  defs.style.fontSize = "11px"; defs.style.color = "#555"; defs.style.margin = "2px 8px 8px 8px";
  defs.innerHTML = ["value", "elbo", "p_lava"].map(function (k) { return "<div><b>" + k + "</b>: " + d[k] + "</div>"; }).join("");
  box.appendChild(defs);
  box.appendChild(t2);
  return box;
}

function caiExplorerDraw(root, rec, state, onCell) {
  // root: a div; rec: Frame.to_json(); state: {t, methods}; onCell(row, col) on a click
  while (root.firstChild) { root.removeChild(root.firstChild); }
  if (!rec || !rec.rows) { return; }
  var methods = (state.methods || ["exact", "soft", "hard"]).filter(function (m) { return rec.methods[m]; });
  var T = rec.horizon, t = Math.max(0, Math.min(T, state.t || 0));
  var head = document.createElement("div");
  head.className = "cai-head";
  head.style.fontSize = "13px";
  head.textContent = rec.name + ": alpha = " + caiFmt(rec.alpha) + ", slip = " + caiFmt(rec.slip) + ", T = " + T + ", t = " + t;
  root.appendChild(head);
  var lo = Infinity, hi = -Infinity;
  methods.forEach(function (m) { rec.methods[m].V[t].forEach(function (v) { if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); } }); });
  var row1 = document.createElement("div"), row2 = document.createElement("div");
  row1.style.display = row2.style.display = "flex";
  row1.style.gap = row2.style.gap = "12px";
  methods.forEach(function (m) {
    var M = rec.methods[m];
    var col = document.createElement("div");
    var cap = document.createElement("div");
    cap.style.fontSize = "12px";
    cap.textContent = rec.labels[m] + ": V_t and pi_t (arrows)";
    col.appendChild(cap);
    col.appendChild(caiGrid(rec, M.V[t], {key: "V-" + m, lo: lo, hi: hi, scheme: "value", what: "V_" + t,
      policy: t < T ? M.policy[t] : null, text: true}, onCell));
    row1.appendChild(col);
    var col2 = document.createElement("div");
    var cap2 = document.createElement("div");
    cap2.style.fontSize = "12px";
    cap2.textContent = m === "exact" ? "posterior p(s_t | O)" : rec.labels[m] + " policy: p(s_t) in the real dynamics";
    col2.appendChild(cap2);
    var mx = Math.max.apply(null, M.marginals[t].concat([1e-12]));
    col2.appendChild(caiGrid(rec, M.marginals[t], {key: "mu-" + m, lo: 0, hi: mx, scheme: "mass", what: "p(s_" + t + ")",
      policy: null, text: false}, onCell));
    row2.appendChild(col2);
  });
  root.appendChild(row1);
  root.appendChild(row2);
  root.appendChild(caiNumbersTable(rec, methods));
}
