// "Select all on this page" for the threads list. Listeners sit on the document
// because htmx replaces the table when the filter, sort or page changes.
(function () {
  "use strict";

  function boxesOf(form) {
    return Array.prototype.slice.call(form.querySelectorAll('input[type="checkbox"][name="thread_ids"]'));
  }

  function refresh(form) {
    var boxes = boxesOf(form);
    var checked = boxes.filter(function (box) { return box.checked; }).length;
    var all = form.querySelector("[data-select-all]");
    if (all) {
      all.checked = boxes.length > 0 && checked === boxes.length;
      all.indeterminate = checked > 0 && checked < boxes.length;
      all.disabled = boxes.length === 0;
    }
    var count = form.querySelector("[data-selection-count]");
    if (count) {
      count.textContent = checked === 0 ? "No threads selected." :
        checked === 1 ? "1 thread selected." : checked + " threads selected.";
    }
    var selectedButton = form.querySelector('button[name="scope"][value="selected"]');
    if (selectedButton) {
      selectedButton.disabled = checked === 0;
    }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = target.closest ? target.closest("#thread-selection") : null;
    if (!form) {
      return;
    }
    if (target.matches("[data-select-all]")) {
      boxesOf(form).forEach(function (box) { box.checked = target.checked; });
    }
    refresh(form);
  });

  function refreshAll() {
    var form = document.getElementById("thread-selection");
    if (form) {
      refresh(form);
    }
  }

  document.addEventListener("DOMContentLoaded", refreshAll);
  document.addEventListener("htmx:afterSettle", refreshAll);
})();
