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

  // openTarget opens the clause row that the URL fragment names, such as
  // a link of the failed and errored clauses list or of the baseline
  // changes, and shows it when the filters hide it.
  function openTarget() {
    var id = decodeURIComponent(location.hash.slice(1));
    var row = id ? document.getElementById(id) : null;
    if (!row || !row.classList.contains("clause")) { return; }
    if (row.classList.contains("hidden")) {
      form.querySelectorAll("input").forEach(function (box) { box.checked = true; });
      apply();
    }
    var details = row.querySelector("details");
    if (details) { details.open = true; }
    row.scrollIntoView();
  }
  window.addEventListener("hashchange", openTarget);
  document.querySelectorAll("#problems a, #baseline a").forEach(function (link) {
    link.addEventListener("click", function () {
      // A second click on the same link changes no fragment, so no
      // hashchange event fires.
      if (link.hash === location.hash) { openTarget(); }
    });
  });
  openTarget();
})();
