// Refresh the page's content in place: fetch the body fragment every data-seconds and swap it
// in, keeping the scroll position. A failed refresh says so and keeps what is shown.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !live.dataset.refresh) { return; }
  var seconds = Math.max(5, parseInt(live.dataset.seconds, 10) || 15);
  function refresh() {
    fetch(live.dataset.refresh, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.text();
      })
      .then(function (html) { live.innerHTML = html; })
      .catch(function (error) {
        var note = document.getElementById("refresh-problem");
        if (!note) {
          note = document.createElement("p");
          note.id = "refresh-problem";
          note.className = "error";
          live.insertBefore(note, live.firstChild);
        }
        note.textContent = "Refreshing failed (" + error.message + "); showing the last page.";
      })
      .finally(function () { window.setTimeout(refresh, seconds * 1000); });
  }
  window.setTimeout(refresh, seconds * 1000);
})();
