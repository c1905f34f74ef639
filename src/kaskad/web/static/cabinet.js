// The overview's charts: Chart.js (vendored) draws the series the server computed.
(function () {
  var source = document.getElementById("chart-data");
  if (!source || typeof Chart === "undefined") return;
  var data = JSON.parse(source.textContent);
  var common = { responsive: true, maintainAspectRatio: false, animation: false,
                 plugins: { legend: { position: "bottom" } } };
  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { canvas.chart = new Chart(canvas, config); }
  }
  draw("chart-per-day", { type: "bar", data: { labels: data.labels, datasets:
    data.channels.map(function (c) { return { label: c.label, data: c.data, backgroundColor: c.color }; }) },
    options: Object.assign({}, common, { scales: { x: { stacked: true },
      y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } } }) });
  draw("chart-rate", { type: "line", data: { labels: data.labels, datasets: [
    { label: data.titles.rate, data: data.rate, borderColor: "#00b894", spanGaps: true } ] },
    options: Object.assign({}, common, { scales: { y: { min: 0, max: 100 } } }) });
  draw("chart-median", { type: "line", data: { labels: data.labels, datasets: [
    { label: data.titles.median, data: data.median, borderColor: "#0984e3", spanGaps: true } ] },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true } } }) });
  draw("chart-saved", { type: "bar", data: { labels: data.labels, datasets: [
    { label: data.titles.saved, data: data.saved, backgroundColor: "#fdcb6e" } ] },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true } } }) });
  document.body.dataset.chartsReady = "1";
})();
