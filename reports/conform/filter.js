(function () {
  var form = document.getElementById("filters");
  if (!form) { return; }
  function apply() {
    var verdicts = {}, levels = {};
    form.querySelectorAll("input[name=verdict]").forEach(function (box) { verdicts[box.value] = box.checked; });
    form.querySelectorAll("input[name=level]").forEach(function (box) { levels[box.value] = box.checked; });
    var shown = 0;
    document.querySelectorAll("tr.clause").forEach(function (row) {
      var visible = verdicts[row.dataset.verdict] !== false && levels[row.dataset.level] !== false;
      row.classList.toggle("hidden", !visible);
      if (visible) { shown++; }
    });
    document.querySelectorAll("section.clauses").forEach(function (section) {
      section.classList.toggle("hidden", section.querySelector("tr.clause:not(.hidden)") === null);
    });
    document.getElementById("shown").textContent = shown;
  }
  form.addEventListener("change", apply);
  document.getElementById("only-problems").addEventListener("click", function () {
    form.querySelectorAll("input[name=verdict]").forEach(function (box) {
      box.checked = box.value === "fail" || box.value === "warn" || box.value === "error";
    });
    apply();
  });
  document.getElementById("show-all").addEventListener("click", function () {
    form.querySelectorAll("input").forEach(function (box) { box.checked = true; });
    apply();
  });
  apply();
})();
