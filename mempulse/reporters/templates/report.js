// Sorting and filtering of the report's tables, in plain JS (no framework).
(function () {
  "use strict";
  function each(list, fn) { for (var i = 0; i < list.length; i++) fn(list[i], i); }
  function keyOf(cell, numeric) {
    var v = cell.getAttribute("data-sort");
    if (v === null) v = cell.textContent;
    if (numeric) return v === "" ? -Infinity : parseFloat(v);
    return v.toLowerCase();
  }
  function sortBy(table, column, th) {
    var numeric = th.getAttribute("data-type") === "num";
    var current = th.getAttribute("aria-sort");
    // Numbers start from the largest, text from A.
    var descending = current ? current === "ascending" : numeric;
    var body = table.tBodies[0];
    var rows = [];
    each(body.rows, function (row, i) { rows.push({ row: row, i: i }); });
    if (rows.length && rows[0].row.cells.length <= column) return;
    rows.sort(function (a, b) {
      var x = keyOf(a.row.cells[column], numeric), y = keyOf(b.row.cells[column], numeric);
      if (x < y) return descending ? 1 : -1;
      if (x > y) return descending ? -1 : 1;
      return a.i - b.i;
    });
    each(rows, function (r) { body.appendChild(r.row); });
    each(table.tHead.rows[0].cells, function (other) { other.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function count(table) {
    var span = document.querySelector('.count[data-for="' + table.id + '"]');
    if (!span) return;
    var shown = 0, total = 0;
    each(table.tBodies[0].rows, function (row) {
      if (row.className === "empty") return;
      total++;
      if (row.style.display !== "none") shown++;
    });
    span.textContent = shown === total ? total + " rows" : shown + " of " + total + " rows";
  }
  each(document.querySelectorAll("table.sortable"), function (table) {
    each(table.tHead.rows[0].cells, function (th, column) {
      th.addEventListener("click", function () { sortBy(table, column, th); });
    });
    count(table);
  });
  each(document.querySelectorAll("input.filter"), function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      each(table.tBodies[0].rows, function (row) {
        var text = row.textContent.toLowerCase();
        var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
        row.style.display = keep ? "" : "none";
      });
      count(table);
    });
  });
  var only = document.getElementById("executed-only");
  if (only) only.addEventListener("change", function () {
    document.body.className = only.checked ? "executed-only" : "";
  });
})();
