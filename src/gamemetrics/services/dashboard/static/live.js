// The live panel: the server's live figures of this game, read every second.
(function () {
  var panel = document.getElementById("live");
  if (!panel) return;
  var url = panel.getAttribute("data-url");
  var big = document.getElementById("live-last-minute");
  var at = document.getElementById("live-at");
  var path = document.querySelector("#live-chart path");
  function draw(perMinute) {
    var top = 1;
    perMinute.forEach(function (p) { top = Math.max(top, p[1]); });
    var step = 600 / Math.max(1, perMinute.length - 1);
    path.setAttribute("d", perMinute.map(function (p, n) {
      return (n ? "L" : "M") + (n * step).toFixed(1) + "," + (58 - (p[1] / top) * 54).toFixed(1);
    }).join(" "));
  }
  function tick() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        if (r.status === 401) { location.reload(); throw new Error("signed out"); }
        return r.json();
      })
      .then(function (live) {
        big.textContent = live.last_minute.toLocaleString();
        big.setAttribute("data-value", live.last_minute);
        at.textContent = "at " + live.at.slice(11, 19) + " UTC; per minute, last hour";
        draw(live.per_minute);
      })
      .catch(function () {})
      .finally(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
