// The runs table: two or more picked rows enable Compare.
"use strict";
(function () {
  const form = document.getElementById("compare-form");
  if (!form) return;
  const button = document.getElementById("compare");
  const picked = () => Array.from(form.querySelectorAll("input.pick:checked")).map((box) => box.value);
  form.addEventListener("change", () => { button.disabled = picked().length < 2; });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    window.location.href = "/compare?runs=" + picked().map(encodeURIComponent).join(",");
  });
})();
