/* Table sorting for the dipbench leaderboard pages (written for this project), on top of the
 * vendored tablesort.js (MIT, see its header).
 *
 * Every <table class="sortable"> gets a Tablesort: a click on a header cell sorts the body rows by
 * that column, ascending first, descending on the next click, and the header's aria-sort says
 * which ("ascending" / "descending").  A cell's sort key is its data-sort attribute (else its text).
 * Headers with data-kind="num" sort with "dipnum": numbers compare as numbers and an empty or
 * non-numeric key (a cell without a value) counts as lower than every number.
 */
(function () {
  "use strict";

  function num(s) {
    var x = parseFloat(s);
    return isNaN(x) ? -Infinity : x;
  }

  function init() {
    if (typeof Tablesort === "undefined") return;
    // tablesort sorts descending with the comparator and reverses for ascending (see tablesort.js)
    Tablesort.extend("dipnum", function () { return false; }, function (a, b) {
      var x = num(a), y = num(b);
      return x === y ? 0 : (y > x ? 1 : -1);
    });
    var tables = document.querySelectorAll("table.sortable");
    Array.prototype.forEach.call(tables, function (table) {
      if (!table.tHead || !table.tBodies.length) return;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
        if (th.getAttribute("data-kind") === "num") th.setAttribute("data-sort-method", "dipnum");
        th.classList.add("sort-head");
        th.setAttribute("tabindex", "0");
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); th.click(); }
        });
      });
      new Tablesort(table);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
