/* Per-image viewer of a dataset x task page (written for this project): show the block of the
 * selected seed and image, hide the others.  Without JavaScript every block stays visible. */
(function () {
  "use strict";
  function init() {
    var root = document.getElementById("viewer");
    if (!root) return;
    var seed = document.getElementById("v-seed"), image = document.getElementById("v-image");
    function show() {
      var blocks = root.querySelectorAll(".vblock");
      Array.prototype.forEach.call(blocks, function (b) {
        var on = b.getAttribute("data-seed") === seed.value && b.getAttribute("data-image") === image.value;
        b.style.display = on ? "" : "none";
      });
    }
    seed.addEventListener("change", show);
    image.addEventListener("change", show);
    show();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
