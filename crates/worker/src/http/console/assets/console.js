// The operator console: asks for the admin token once (kept in this tab's session
// storage), then reads the console API with it in the Authorization header, follows the
// event stream for live changes, polls as a fallback, and runs the actions the operator
// clicks. Every value from the server is put in the page as text, never as HTML.
(function () {
  "use strict";

  var KEY = "pgwa-console-token";
  var POLL_MS = 5000;
  var token = sessionStorage.getItem(KEY) || "";
  var kindsShown = false;
  var refreshing = null;
  var again = false;
  var stream = null;
  var qrTimer = null;
  var qrUrl = null;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") e.textContent = attrs[k];
      else if (k === "cls") e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) e.appendChild(c); });
    return e;
  }

  function td(text, cls) { return el("td", { text: text == null ? "" : String(text), cls: cls || "" }); }

  function ago(iso, now) {
    if (!iso) return "";
    var s = Math.round((now - Date.parse(iso)) / 1000);
    if (s < 0) return "in " + human(-s);
    return human(s) + " ago";
  }

  function human(s) {
    if (s < 90) return s + " s";
    if (s < 5400) return Math.round(s / 60) + " min";
    if (s < 172800) return Math.round(s / 3600) + " h";
    return Math.round(s / 86400) + " d";
  }

  function setState(s) {
    $("app").setAttribute("data-state", s);
    $("sign-in-view").hidden = s !== "signed-out";
    $("main-view").hidden = s === "signed-out";
    $("sign-out").hidden = s === "signed-out";
  }

  function notice(text, isError) {
    var n = $("notice");
    n.textContent = text;
    n.className = isError ? "error" : "ok";
  }

  // A call to the console API: the parsed JSON, or an Error carrying the status and
  // the server's message.
  async function api(method, path, body) {
    var opts = { method: method, cache: "no-store", headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    var r = await fetch("/console/api/" + path, opts);
    var j = await r.json().catch(function () { return {}; });
    if (!r.ok) {
      var e = new Error(j.error || r.status + " " + r.statusText);
      e.status = r.status;
      e.sqlstate = j.sqlstate;
      throw e;
    }
    return j;
  }

  function signOut(message) {
    token = "";
    sessionStorage.removeItem(KEY);
    if (stream) stream.abort();
    $("sign-in-error").textContent = message || "";
    setState("signed-out");
    $("token").focus();
  }

  // A refused token (or a console that is off) sends the operator back to sign in.
  function failed(e) {
    if (e.status === 401 || e.status === 403 || e.status === 404) {
      signOut(e.message);
      return;
    }
    $("live").className = "live off";
    notice(e.message, true);
  }

  function jobQuery() {
    var q = new URLSearchParams();
    q.set("state", $("job-state").value);
    [["session", "job-session"], ["kind", "job-kind"], ["error", "job-error"]].forEach(function (p) {
      var v = $(p[1]).value.trim();
      if (v) q.set(p[0], v);
    });
    return q;
  }

  async function refresh() {
    if (!token) return;
    if (refreshing) { again = true; return refreshing; }
    refreshing = (async function () {
      try {
        var q = new URLSearchParams();
        var search = $("session-search").value.trim();
        if (search) q.set("q", search);
        var both = await Promise.all([api("GET", "overview?" + q), api("GET", "jobs?" + jobQuery())]);
        if ($("app").getAttribute("data-state") === "signed-out") setState("ready");
        render(both[0], both[1].jobs);
        if (!stream) follow();
      } catch (e) {
        failed(e);
      } finally {
        refreshing = null;
        if (again) { again = false; refresh(); }
      }
    })();
    return refreshing;
  }

  function render(o, jobs) {
    var now = Date.parse(o.now);
    $("served-by").textContent = "served by worker " + o.served_by.worker.slice(0, 8) + " · v" + o.served_by.version;
    if (!kindsShown) {
      o.kinds.forEach(function (k) { $("job-kind").appendChild(el("option", { text: k, value: k })); });
      kindsShown = true;
    }
    var counts = Object.keys(o.by_status).sort().map(function (s) { return o.by_status[s] + " " + s; });
    $("session-counts").textContent = counts.length ? "(" + counts.join(", ") + ")" : "(none yet)";
    fill("sessions", o.sessions.map(function (s) { return sessionRow(s, now); }), 9,
      "No sessions" + ($("session-search").value.trim() ? " match the filter." : " yet: SELECT wa.add_session('salon-42');"));
    fill("queue", o.queue.map(function (q) {
      return el("tr", {}, [td(q.session || "(no session)"), td(q.kind), td(q.available, "num"), td(q.scheduled, "num"),
        td(q.running, "num"), td(q.retryable, "num"), td(q.dead, q.dead ? "num bad" : "num"),
        td(q.oldest_available_secs == null ? "" : human(Math.round(q.oldest_available_secs)), "num")]);
    }), 8, "Nothing waiting, running or dead.");
    fill("jobs", jobs.map(function (j) { return jobRow(j, now); }), 8, "No " + $("job-state").value + " jobs match.");
    fill("workers", o.workers.map(function (w) {
      var late = w.heartbeat_age_secs > 10;
      return el("tr", { "data-worker": w.id }, [td(w.id.slice(0, 8), "mono"), td(w.host), td(w.pid, "num"), td(w.version),
        td(w.backend), td(w.sessions + " / " + w.max_sessions, "num"),
        td(w.stopping_at ? "stopping" : ago(w.heartbeat_at, now), late ? "bad" : ""), td(ago(w.started_at, now))]);
    }), 8, "No worker is running: start one with pgwa run.");
  }

  function fill(table, rows, cols, empty) {
    var body = $(table).tBodies[0];
    body.replaceChildren.apply(body, rows.length ? rows : [el("tr", {}, [el("td", { colspan: cols, cls: "muted", text: empty })])]);
  }

  function button(label, action, cls) {
    return el("button", { type: "button", "data-action": action, cls: cls || "small", text: label });
  }

  function sessionRow(s, now) {
    var errors = s.bad_mac_count + "/" + s.bad_mac_limit + " · " + s.bad_decrypt_count + "/" + s.bad_decrypt_limit +
      " · " + s.failed_connect_count + "/" + s.connect_failure_limit;
    var status = el("td", {}, [el("span", { cls: "badge " + s.status, text: s.status })]);
    if (s.status_reason) status.appendChild(el("div", { cls: "muted small-text", text: s.status_reason }));
    var actions = el("td", { cls: "actions" }, [
      s.desired === "running" ? button("Stop", "stop") : button("Start", "start"),
      button("Reconnect", "reconnect"),
      button("Close", "close", "small danger"),
      s.has_qr ? button("QR", "qr") : null,
    ]);
    return el("tr", { "data-session": s.session }, [
      el("td", {}, [el("div", { text: s.session }), el("div", { cls: "muted small-text", text: s.tenant })]),
      status,
      td(s.healthy ? "healthy" : "unhealthy", s.healthy ? "good" : "bad"),
      td(s.phone ? "+" + s.phone : ""),
      td(s.worker_host ? s.worker_host + " (" + s.worker_id.slice(0, 8) + ")" : "not held"),
      td(s.lease_expires_at ? ago(s.lease_expires_at, now) : ""),
      td(errors, "mono"),
      td(s.last_error ? s.last_error + " (" + ago(s.last_error_at, now) + ")" : "", "error-cell"),
      actions,
    ]);
  }

  function jobRow(j, now) {
    var canRetry = ["dead", "cancelled", "retryable", "scheduled"].indexOf(j.state) >= 0;
    var canCancel = ["available", "scheduled", "retryable", "running"].indexOf(j.state) >= 0;
    return el("tr", { "data-job": j.id }, [td(j.id, "num"), td(j.session_id || ""), td(j.kind),
      el("td", {}, [el("span", { cls: "badge " + j.state, text: j.state })]),
      td(j.attempts + " / " + j.max_attempts, "num"), td(ago(j.created_at, now)), td(j.last_error || "", "error-cell"),
      el("td", { cls: "actions" }, [canRetry ? button("Retry", "retry") : null,
        canCancel ? button("Cancel", "cancel", "small danger") : null])]);
  }

  // A button that does something hard to undo asks for a second click within 5 s.
  function confirmed(b, label) {
    if (b.getAttribute("data-armed") === "1") { b.removeAttribute("data-armed"); return true; }
    var was = b.textContent;
    b.setAttribute("data-armed", "1");
    b.textContent = label;
    setTimeout(function () { if (b.getAttribute("data-armed") === "1") { b.removeAttribute("data-armed"); b.textContent = was; } }, 5000);
    return false;
  }

  async function act(b, method, path, body, done) {
    b.disabled = true;
    try {
      notice(done(await api(method, path, body)), false);
    } catch (e) {
      if (e.status === 401 || e.status === 403) return failed(e);
      notice(e.message, true);
    } finally {
      b.disabled = false;
    }
    refresh();
  }

  $("sessions").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-action]");
    if (!b) return;
    var id = b.closest("tr").getAttribute("data-session");
    var action = b.getAttribute("data-action");
    if (action === "qr") return showQr(id);
    if (action === "close" && !confirmed(b, "Close it?")) return;
    act(b, "POST", "sessions/" + encodeURIComponent(id) + "/" + action, undefined, function (r) {
      return "Session " + id + ": " + action + (r.job ? " (job " + r.job + ")" : "") + " requested.";
    });
  });

  $("jobs").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-action]");
    if (!b) return;
    var id = b.closest("tr").getAttribute("data-job");
    var action = b.getAttribute("data-action");
    act(b, "POST", "jobs/" + id + "/" + action, undefined, function (r) {
      return "Job " + id + ": " + (action === "retry" ? "runs again" : "cancel asked") + " (now " + r.state + ").";
    });
  });

  function pick() {
    var q = jobQuery();
    var p = { state: q.get("state") };
    if (q.get("session")) p.session = q.get("session");
    if (q.get("kind")) p.kind = q.get("kind");
    if (q.get("error")) p.error_contains = q.get("error");
    return p;
  }

  $("retry-all").addEventListener("click", function () {
    var b = $("retry-all");
    if (!confirmed(b, "Retry every " + $("job-state").value + " job that matches?")) return;
    b.textContent = "Retry all matching";
    act(b, "POST", "jobs/retry", pick(), function (r) { return r.jobs + " job(s) run again."; });
  });

  $("cancel-all").addEventListener("click", function () {
    var b = $("cancel-all");
    if (!confirmed(b, "Cancel every " + $("job-state").value + " job that matches?")) return;
    b.textContent = "Cancel all matching";
    act(b, "POST", "jobs/cancel", pick(), function (r) { return r.jobs + " job(s) cancelled or asked to stop."; });
  });

  ["job-state", "job-kind"].forEach(function (id) { $(id).addEventListener("change", refresh); });
  var typing = null;
  ["job-session", "job-error", "session-search"].forEach(function (id) {
    $(id).addEventListener("input", function () { clearTimeout(typing); typing = setTimeout(refresh, 300); });
  });

  async function showQr(id) {
    $("qr-title").textContent = id;
    $("qr-text").textContent = "";
    $("qr-dialog").showModal();
    async function load() {
      try {
        var r = await fetch("/sessions/" + encodeURIComponent(id) + "/qr.svg",
          { cache: "no-store", headers: { Authorization: "Bearer " + token } });
        if (!r.ok) {
          $("qr-img").hidden = true;
          $("qr-text").textContent = r.status === 404 ? "No QR code is waiting: the session is linked, or not linking now." : await r.text();
          return;
        }
        if (qrUrl) URL.revokeObjectURL(qrUrl);
        qrUrl = URL.createObjectURL(await r.blob());
        $("qr-img").src = qrUrl;
        $("qr-img").hidden = false;
        $("qr-text").textContent = "WhatsApp › Settings › Linked devices › Link a device. It refreshes by itself.";
      } catch (e) {
        $("qr-text").textContent = e.message;
      }
    }
    await load();
    clearInterval(qrTimer);
    qrTimer = setInterval(load, 3000);
  }

  $("qr-close").addEventListener("click", function () { $("qr-dialog").close(); });
  $("qr-dialog").addEventListener("close", function () { clearInterval(qrTimer); });

  // Server-Sent Events read with fetch, since EventSource cannot send the token in a
  // header. Each event names a session that changed; the page re-reads then.
  async function follow() {
    var ctl = new AbortController();
    stream = ctl;
    try {
      var r = await fetch("/console/api/events", { headers: { Authorization: "Bearer " + token }, signal: ctl.signal });
      if (!r.ok || !r.body) throw new Error("events: " + r.status);
      $("live").className = "live on";
      var reader = r.body.getReader();
      var decoder = new TextDecoder();
      var buf = "";
      for (;;) {
        var chunk = await reader.read();
        if (chunk.done) break;
        buf += decoder.decode(chunk.value, { stream: true });
        var end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          var block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          if (/^event: session$/m.test(block)) refresh();
        }
      }
    } catch (e) {
      // Aborted on sign-out, or the worker went away: the poll carries on.
    }
    $("live").className = "live off";
    if (stream === ctl) {
      stream = null;
      if (token) setTimeout(function () { if (!stream && token) follow(); }, 3000);
    }
  }

  $("sign-in-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    token = $("token").value.trim();
    if (!token) { $("sign-in-error").textContent = "Type the admin token first."; return; }
    sessionStorage.setItem(KEY, token);
    $("token").value = "";
    $("sign-in-error").textContent = "";
    refresh();
  });

  $("sign-out").addEventListener("click", function () { signOut(""); });

  setInterval(refresh, POLL_MS);
  if (token) refresh(); else setState("signed-out");
})();
