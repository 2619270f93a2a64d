(function () {
  "use strict";
  // Flame graph zoom: the clicked frame and its ancestors take the full width, their siblings
  // hide; children widths are relative to their parent, so the subtree rescales by itself.
  var flames = document.querySelectorAll(".flame");
  for (var k = 0; k < flames.length; k++) (function (flame) {
    flame.addEventListener("click", function (ev) {
      var label = ev.target.closest(".l");
      if (!label) return;
      var frames = flame.querySelectorAll(".f");
      for (var i = 0; i < frames.length; i++) frames[i].classList.remove("z", "x");
      var frame = label.parentNode;
      if (frame.parentNode === flame) return; // the root frame resets the zoom
      for (var f = frame; f && f !== flame; f = f.parentNode.closest(".f")) {
        f.classList.add("z");
        var sibs = f.parentNode.children;
        for (var j = 0; j < sibs.length; j++) if (sibs[j] !== f) sibs[j].classList.add("x");
      }
    });
  })(flames[k]);
  // Sortable tables: click a header; numbers ($, %, thousands separators) sort as numbers.
  function key(cell) {
    var t = cell.textContent.trim();
    var n = parseFloat(t.replace(/[$,%*]/g, ""));
    return isNaN(n) ? t.toLowerCase() : n;
  }
  var tables = document.querySelectorAll("table.sortable");
  for (var t = 0; t < tables.length; t++) {
    (function (table) {
      var heads = table.tHead.rows[0].cells;
      for (var c = 0; c < heads.length; c++) {
        (function (th, col) {
          th.addEventListener("click", function () {
            var desc = th.getAttribute("aria-sort") !== "descending";
            for (var h = 0; h < heads.length; h++) heads[h].removeAttribute("aria-sort");
            th.setAttribute("aria-sort", desc ? "descending" : "ascending");
            var body = table.tBodies[0];
            var rows = Array.prototype.slice.call(body.rows);
            rows.sort(function (a, b) {
              var x = key(a.cells[col]), y = key(b.cells[col]);
              var r = x < y ? -1 : x > y ? 1 : 0;
              return desc ? -r : r;
            });
            rows.forEach(function (row) { body.appendChild(row); });
          });
        })(heads[c], c);
      }
    })(tables[t]);
  }
})();
