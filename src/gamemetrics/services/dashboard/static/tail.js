// The events tail: the newest processed events of the game, read every second unless paused.
(function () {
  var form = document.getElementById("tail-filters");
  if (!form) return;
  var body = document.querySelector("#tail tbody");
  var state = document.getElementById("tail-state");
  var pause = document.getElementById("tail-pause");
  var paused = false;
  pause.addEventListener("click", function () {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    state.textContent = paused ? "paused" : "live";
  });
  function cell(row, text) { var td = row.insertCell(); td.textContent = text == null ? "" : text; }
  function tick() {
    if (paused) { setTimeout(tick, 1000); return; }
    var query = new URLSearchParams({
      type: document.getElementById("tail-type").value, player: document.getElementById("tail-player").value });
    fetch(form.getAttribute("data-url") + "?" + query, { headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { location.reload(); throw new Error("signed out"); }
        return r.json();
      })
      .then(function (answer) {
        if (!answer.events) { state.textContent = answer.error || "error"; return; }
        body.innerHTML = "";
        answer.events.forEach(function (e) {
          var row = body.insertRow();
          row.className = "tail-row";
          cell(row, e.received_at.slice(0, 19).replace("T", " "));
          cell(row, e.event_type + (e.name ? " · " + e.name : ""));
          cell(row, e.player_id); cell(row, e.revenue_usd); cell(row, e.platform); cell(row, e.country);
        });
        state.textContent = "live · " + answer.events.length + " events";
      })
      .catch(function () {})
      .finally(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
