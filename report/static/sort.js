/* Table sorting for the dipbench leaderboard (written for this project; no dependencies).
 *
 * Every <table class="sortable">: a click on a header cell sorts the body rows by that column,
 * ascending first, descending on the next click.  A cell's sort key is its data-sort attribute
 * (else its text); columns whose header has data-kind="num" compare as numbers, and cells with an
 * empty or non-numeric key always go last.  The header cell gets aria-sort ("ascending" /
 * "descending") so the state is visible to assistive technology and to the tests.
 */
(function () {
  "use strict";

  function key(cell) {
    if (!cell) return "";
    var k = cell.getAttribute("data-sort");
    return k === null ? cell.textContent.trim() : k;
  }

  function compare(a, b, numeric, dir) {
    if (numeric) {
      var x = parseFloat(a), y = parseFloat(b);
      var xn = isNaN(x), yn = isNaN(y);
      if (xn || yn) return xn && yn ? 0 : (xn ? 1 : -1);  // missing values last, either direction
      return dir * (x - y);
    }
    if (a === "" || b === "") return a === b ? 0 : (a === "" ? 1 : -1);
    return dir * a.localeCompare(b, undefined, {numeric: true});
  }

  function sortBy(table, th) {
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-kind") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows = rows.map(function (r, i) { return [r, i]; });
    rows.sort(function (p, q) {
      var c = compare(key(p[0].cells[idx]), key(q[0].cells[idx]), numeric, dir);
      return c !== 0 ? c : p[1] - q[1];  // stable
    });
    rows.forEach(function (p) { body.appendChild(p[0]); });
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  }

  function init() {
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      if (!table.tHead || !table.tBodies.length) return;
      var heads = table.tHead.rows[table.tHead.rows.length - 1].cells;
      Array.prototype.forEach.call(heads, function (th) {
        th.classList.add("sort-head");
        th.setAttribute("tabindex", "0");
        th.addEventListener("click", function () { sortBy(table, th); });
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th); }
        });
      });
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
