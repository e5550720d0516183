// A CSV of any table marked by a button's data-table, made in the browser from the cells shown.
document.addEventListener("click", function (event) {
  var button = event.target.closest ? event.target.closest(".csv-button") : null;
  if (!button) return;
  var table = document.getElementById(button.getAttribute("data-table"));
  var rows = Array.prototype.map.call(table.rows, function (row) {
    return Array.prototype.map.call(row.cells, function (cell) {
      var text = cell.textContent.trim();
      return /[",\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    }).join(",");
  });
  var link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([rows.join("\r\n") + "\r\n"], { type: "text/csv" }));
  link.download = button.getAttribute("data-name") || "table.csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
});
