/* Apolo dashboard: the live calls table (Server-Sent Events) and the rate import's upload
   progress. No dependencies; every value is written with textContent, never as HTML. */
(function () {
  "use strict";

  function hms(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h + ":" + (m < 10 ? "0" : "") + m + ":" + (r < 10 ? "0" : "") + r;
  }

  function liveCalls(table) {
    var body = table.tBodies[0];
    var calls = {};
    var offset = 0; // server clock minus this browser's clock, in seconds
    var status = document.getElementById("live-status");
    var empty = document.getElementById("live-empty");
    var count = document.getElementById("live-count");

    function serverNow() { return Date.now() / 1000 + offset; }
    function clock(data) { if (data.now) { offset = data.now - Date.now() / 1000; } }

    function cell(row, text, cls) {
      var td = row.insertCell();
      td.textContent = text;
      if (cls) { td.className = cls; }
      return td;
    }

    function render() {
      var uuids = Object.keys(calls).sort(function (a, b) {
        return (parseFloat(calls[a].authorized_at) || 0) - (parseFloat(calls[b].authorized_at) || 0);
      });
      while (body.rows.length) { body.deleteRow(0); }
      uuids.forEach(function (uuid) {
        var c = calls[uuid], row = body.insertRow();
        row.dataset.uuid = uuid;
        cell(row, uuid, "mono");
        cell(row, c.account || "");
        cell(row, c.caller || "");
        cell(row, c.callee || "");
        cell(row, c.rate_per_minute || "", "num");
        cell(row, c.reserved || "", "num");
        cell(row, c.answered_at ? "talking" : "authorized");
        cell(row, "", "num duration");
        cell(row, "", "num remaining");
      });
      empty.hidden = uuids.length > 0;
      table.hidden = uuids.length === 0;
      count.textContent = "(" + uuids.length + ")";
      tick();
    }

    function tick() {
      var now = serverNow();
      Array.prototype.forEach.call(body.rows, function (row) {
        var c = calls[row.dataset.uuid];
        if (!c) { return; }
        var answered = parseFloat(c.answered_at);
        var started = answered || parseFloat(c.authorized_at) || now;
        var paid = parseInt(c.max_duration, 10) || 0;
        var left = answered ? paid - (now - answered) : paid;
        row.querySelector(".duration").textContent = hms(now - started);
        var remaining = row.querySelector(".remaining");
        remaining.textContent = hms(left);
        remaining.classList.toggle("low", left < 60);
      });
    }

    var source = null;
    function connect() {
      source = new EventSource(table.dataset.stream);
      source.addEventListener("open", function () { status.textContent = "Live: updates arrive as calls start and end."; });
      source.addEventListener("error", function () {
        if (source.readyState === EventSource.CLOSED) {
          // refused (busy, Redis down, or the session ended): try again shortly
          status.textContent = "Live feed unavailable; retrying in 5 s (reload the page if your session ended).";
          setTimeout(connect, 5000);
        } else {
          status.textContent = "Live feed interrupted; reconnecting…";
        }
      });
      listen(source);
    }

    function listen(source) {
      source.addEventListener("snapshot", function (e) {
        var data = JSON.parse(e.data);
        clock(data);
        calls = {};
        data.calls.forEach(function (c) { calls[c.uuid] = c; });
        render();
      });
      source.addEventListener("call", function (e) {
        var data = JSON.parse(e.data);
        clock(data);
        calls[data.call.uuid] = data.call;
        render();
      });
      source.addEventListener("gone", function (e) {
        var data = JSON.parse(e.data);
        clock(data);
        delete calls[data.uuid];
        render();
      });
    }

    connect();
    setInterval(tick, 1000);
  }

  function rateImport(form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var progress = document.getElementById("import-progress");
      var status = document.getElementById("import-status");
      var button = document.getElementById("import-submit");
      var xhr = new XMLHttpRequest();
      button.disabled = true;
      progress.hidden = false;
      progress.value = 0;
      status.textContent = "Uploading…";
      xhr.upload.addEventListener("progress", function (p) {
        if (p.lengthComputable) {
          progress.value = Math.round((p.loaded / p.total) * 100);
          status.textContent = "Uploading… " + progress.value + " %";
        }
      });
      xhr.upload.addEventListener("load", function () {
        progress.removeAttribute("value");
        status.textContent = "Checking every line and importing…";
      });
      xhr.addEventListener("load", function () {
        if (xhr.responseURL && xhr.responseURL.indexOf("/dashboard/login") !== -1) {
          window.location = xhr.responseURL;
          return;
        }
        var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        var main = page.querySelector("main");
        if (main) {
          document.querySelector("main").replaceWith(document.adoptNode(main));
          init();
        } else {
          status.textContent = "The import failed (HTTP " + xhr.status + ").";
          button.disabled = false;
        }
      });
      xhr.addEventListener("error", function () {
        status.textContent = "The upload failed; check the connection and try again.";
        button.disabled = false;
      });
      xhr.open("POST", form.action);
      xhr.send(new FormData(form));
    });
  }

  function init() {
    var table = document.getElementById("live-calls");
    if (table && !table.dataset.started) { table.dataset.started = "1"; liveCalls(table); }
    var form = document.getElementById("rate-import");
    if (form) { rateImport(form); }
  }

  init();
})();
