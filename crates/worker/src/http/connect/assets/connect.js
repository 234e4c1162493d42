// The connect page: renders each state the server sends (first in the page, then as
// Server-Sent Events) and asks for a pairing code or a new round of codes.
(function () {
  "use strict";

  var TEXTS = {
    en: {
      title: "Connect WhatsApp",
      waiting: "Preparing your code\u2026",
      qr_help: "On your phone open WhatsApp \u203a Settings \u203a Linked devices \u203a Link a device, and point the camera at this code.",
      qr_countdown: "A new code in {s} s",
      use_phone: "Link with phone number instead",
      use_qr: "Scan a QR code instead",
      phone_label: "Your WhatsApp number, with country code",
      get_code: "Get code",
      code_help: "On your phone open WhatsApp \u203a Settings \u203a Linked devices \u203a Link a device \u203a Link with phone number instead, and type this code:",
      code_countdown: "The code is valid for {s} s",
      connected: "Connected",
      connected_as: "WhatsApp {phone} is connected. You can close this page.",
      connected_plain: "Your WhatsApp is connected. You can close this page.",
      retry: "Try again",
      new_code: "Show a new code",
      INVALID_TOKEN: "This link is not valid or has expired. Ask for a new link.",
      SESSION_NOT_FOUND: "This connection no longer exists. Ask for a new link.",
      QR_EXPIRED: "The code was not scanned in time.",
      RATE_LIMIT: "Too many attempts. Try again in {s} s.",
      CONNECTION_FAILED: "Connecting failed.",
      DB_ERROR: "The service is unavailable right now. This page tries again by itself.",
      INVALID_PHONE: "That is not a phone number: type it with the country code, for example +7 912 345 67 89.",
      OFFLINE: "No connection to the server. This page tries again by itself."
    },
    ru: {
      title: "\u041f\u043e\u0434\u043a\u043b\u044e\u0447\u0435\u043d\u0438\u0435 WhatsApp",
      waiting: "\u0413\u043e\u0442\u043e\u0432\u0438\u043c \u043a\u043e\u0434\u2026",
      qr_help: "\u041d\u0430 \u0442\u0435\u043b\u0435\u0444\u043e\u043d\u0435 \u043e\u0442\u043a\u0440\u043e\u0439\u0442\u0435 WhatsApp \u203a \u041d\u0430\u0441\u0442\u0440\u043e\u0439\u043a\u0438 \u203a \u0421\u0432\u044f\u0437\u0430\u043d\u043d\u044b\u0435 \u0443\u0441\u0442\u0440\u043e\u0439\u0441\u0442\u0432\u0430 \u203a \u041f\u0440\u0438\u0432\u044f\u0437\u043a\u0430 \u0443\u0441\u0442\u0440\u043e\u0439\u0441\u0442\u0432\u0430 \u0438 \u043d\u0430\u0432\u0435\u0434\u0438\u0442\u0435 \u043a\u0430\u043c\u0435\u0440\u0443 \u043d\u0430 \u044d\u0442\u043e\u0442 \u043a\u043e\u0434.",
      qr_countdown: "\u041d\u043e\u0432\u044b\u0439 \u043a\u043e\u0434 \u0447\u0435\u0440\u0435\u0437 {s} \u0441",
      use_phone: "\u041f\u0440\u0438\u0432\u044f\u0437\u0430\u0442\u044c \u043f\u043e \u043d\u043e\u043c\u0435\u0440\u0443 \u0442\u0435\u043b\u0435\u0444\u043e\u043d\u0430",
      use_qr: "\u0421\u043a\u0430\u043d\u0438\u0440\u043e\u0432\u0430\u0442\u044c QR-\u043a\u043e\u0434",
      phone_label: "\u0412\u0430\u0448 \u043d\u043e\u043c\u0435\u0440 WhatsApp \u0441 \u043a\u043e\u0434\u043e\u043c \u0441\u0442\u0440\u0430\u043d\u044b",
      get_code: "\u041f\u043e\u043b\u0443\u0447\u0438\u0442\u044c \u043a\u043e\u0434",
      code_help: "\u041d\u0430 \u0442\u0435\u043b\u0435\u0444\u043e\u043d\u0435 \u043e\u0442\u043a\u0440\u043e\u0439\u0442\u0435 WhatsApp \u203a \u041d\u0430\u0441\u0442\u0440\u043e\u0439\u043a\u0438 \u203a \u0421\u0432\u044f\u0437\u0430\u043d\u043d\u044b\u0435 \u0443\u0441\u0442\u0440\u043e\u0439\u0441\u0442\u0432\u0430 \u203a \u041f\u0440\u0438\u0432\u044f\u0437\u043a\u0430 \u0443\u0441\u0442\u0440\u043e\u0439\u0441\u0442\u0432\u0430 \u203a \u041f\u0440\u0438\u0432\u044f\u0437\u0430\u0442\u044c \u043f\u043e \u043d\u043e\u043c\u0435\u0440\u0443 \u0442\u0435\u043b\u0435\u0444\u043e\u043d\u0430 \u0438 \u0432\u0432\u0435\u0434\u0438\u0442\u0435 \u044d\u0442\u043e\u0442 \u043a\u043e\u0434:",
      code_countdown: "\u041a\u043e\u0434 \u0434\u0435\u0439\u0441\u0442\u0432\u0443\u0435\u0442 {s} \u0441",
      connected: "\u041f\u043e\u0434\u043a\u043b\u044e\u0447\u0435\u043d\u043e",
      connected_as: "WhatsApp {phone} \u043f\u043e\u0434\u043a\u043b\u044e\u0447\u0451\u043d. \u042d\u0442\u0443 \u0441\u0442\u0440\u0430\u043d\u0438\u0446\u0443 \u043c\u043e\u0436\u043d\u043e \u0437\u0430\u043a\u0440\u044b\u0442\u044c.",
      connected_plain: "\u0412\u0430\u0448 WhatsApp \u043f\u043e\u0434\u043a\u043b\u044e\u0447\u0451\u043d. \u042d\u0442\u0443 \u0441\u0442\u0440\u0430\u043d\u0438\u0446\u0443 \u043c\u043e\u0436\u043d\u043e \u0437\u0430\u043a\u0440\u044b\u0442\u044c.",
      retry: "\u041f\u043e\u043f\u0440\u043e\u0431\u043e\u0432\u0430\u0442\u044c \u0441\u043d\u043e\u0432\u0430",
      new_code: "\u041f\u043e\u043a\u0430\u0437\u0430\u0442\u044c \u043d\u043e\u0432\u044b\u0439 \u043a\u043e\u0434",
      INVALID_TOKEN: "\u0421\u0441\u044b\u043b\u043a\u0430 \u043d\u0435\u0434\u0435\u0439\u0441\u0442\u0432\u0438\u0442\u0435\u043b\u044c\u043d\u0430 \u0438\u043b\u0438 \u0443\u0441\u0442\u0430\u0440\u0435\u043b\u0430. \u0417\u0430\u043f\u0440\u043e\u0441\u0438\u0442\u0435 \u043d\u043e\u0432\u0443\u044e \u0441\u0441\u044b\u043b\u043a\u0443.",
      SESSION_NOT_FOUND: "\u042d\u0442\u043e \u043f\u043e\u0434\u043a\u043b\u044e\u0447\u0435\u043d\u0438\u0435 \u0431\u043e\u043b\u044c\u0448\u0435 \u043d\u0435 \u0441\u0443\u0449\u0435\u0441\u0442\u0432\u0443\u0435\u0442. \u0417\u0430\u043f\u0440\u043e\u0441\u0438\u0442\u0435 \u043d\u043e\u0432\u0443\u044e \u0441\u0441\u044b\u043b\u043a\u0443.",
      QR_EXPIRED: "\u041a\u043e\u0434 \u043d\u0435 \u0431\u044b\u043b \u043e\u0442\u0441\u043a\u0430\u043d\u0438\u0440\u043e\u0432\u0430\u043d \u0432\u043e\u0432\u0440\u0435\u043c\u044f.",
      RATE_LIMIT: "\u0421\u043b\u0438\u0448\u043a\u043e\u043c \u043c\u043d\u043e\u0433\u043e \u043f\u043e\u043f\u044b\u0442\u043e\u043a. \u041f\u043e\u043f\u0440\u043e\u0431\u0443\u0439\u0442\u0435 \u0441\u043d\u043e\u0432\u0430 \u0447\u0435\u0440\u0435\u0437 {s} \u0441.",
      CONNECTION_FAILED: "\u041d\u0435 \u0443\u0434\u0430\u043b\u043e\u0441\u044c \u043f\u043e\u0434\u043a\u043b\u044e\u0447\u0438\u0442\u044c\u0441\u044f.",
      DB_ERROR: "\u0421\u0435\u0440\u0432\u0438\u0441 \u0441\u0435\u0439\u0447\u0430\u0441 \u043d\u0435\u0434\u043e\u0441\u0442\u0443\u043f\u0435\u043d. \u0421\u0442\u0440\u0430\u043d\u0438\u0446\u0430 \u043f\u043e\u0432\u0442\u043e\u0440\u0438\u0442 \u043f\u043e\u043f\u044b\u0442\u043a\u0443 \u0441\u0430\u043c\u0430.",
      INVALID_PHONE: "\u042d\u0442\u043e \u043d\u0435 \u043d\u043e\u043c\u0435\u0440 \u0442\u0435\u043b\u0435\u0444\u043e\u043d\u0430: \u0432\u0432\u0435\u0434\u0438\u0442\u0435 \u0435\u0433\u043e \u0441 \u043a\u043e\u0434\u043e\u043c \u0441\u0442\u0440\u0430\u043d\u044b, \u043d\u0430\u043f\u0440\u0438\u043c\u0435\u0440 +7 912 345 67 89.",
      OFFLINE: "\u041d\u0435\u0442 \u0441\u0432\u044f\u0437\u0438 \u0441 \u0441\u0435\u0440\u0432\u0435\u0440\u043e\u043c. \u0421\u0442\u0440\u0430\u043d\u0438\u0446\u0430 \u043f\u043e\u0432\u0442\u043e\u0440\u0438\u0442 \u043f\u043e\u043f\u044b\u0442\u043a\u0443 \u0441\u0430\u043c\u0430."
    }
  };
  var lang = TEXTS[document.documentElement.lang] ? document.documentElement.lang : "en";
  function t(key, vars) {
    var s = TEXTS[lang][key] || TEXTS.en[key] || key;
    Object.keys(vars || {}).forEach(function (k) { s = s.split("{" + k + "}").join(vars[k]); });
    return s;
  }
  function $(id) { return document.getElementById(id); }
  document.querySelectorAll("[data-t]").forEach(function (el) { el.textContent = t(el.getAttribute("data-t")); });
  document.title = t("title");

  var base = location.pathname.replace(/\/+$/, "");
  var current = null;      // the state shown
  var deadline = null;     // when the shown code (or the rate limit) runs out
  var choosingPhone = false;
  var source = null;
  // Errors after which nothing changes by itself: the stream is closed.
  var FINAL = { INVALID_TOKEN: 1, SESSION_NOT_FOUND: 1 };

  function show(section) {
    ["waiting", "qr-view", "code-view", "connected-view", "error-view"].forEach(function (id) {
      $(id).hidden = id !== section;
    });
    var linking = section === "waiting" || section === "qr-view" || section === "code-view";
    $("pair-form").hidden = !(linking && choosingPhone);
    $("pair-toggle").hidden = !linking;
    $("pair-toggle").textContent = t(choosingPhone || section === "code-view" ? "use_qr" : "use_phone");
  }

  function render(s) {
    current = s;
    $("app").setAttribute("data-state", s.state === "error" ? "error-" + s.error : s.state);
    deadline = s.expires_in != null ? Date.now() + s.expires_in * 1000 :
               s.retry_after != null ? Date.now() + s.retry_after * 1000 : null;
    if (s.state === "qr") {
      $("qr").src = s.image;
      show("qr-view");
    } else if (s.state === "pair_code") {
      $("code").textContent = s.code;
      show("code-view");
    } else if (s.state === "connected") {
      $("connected-text").textContent = s.phone ? t("connected_as", { phone: s.phone }) : t("connected_plain");
      show("connected-view");
      if (source) { source.close(); source = null; }
    } else if (s.state === "error") {
      $("error-code").textContent = s.error + " (" + s.status + ")";
      var retry = $("retry");
      retry.hidden = !(s.error === "QR_EXPIRED" || s.error === "CONNECTION_FAILED");
      retry.textContent = t(s.error === "QR_EXPIRED" ? "new_code" : "retry");
      show("error-view");
      if (FINAL[s.error] && source) { source.close(); source = null; }
    } else {
      show("waiting");
    }
    tick();
  }

  function tick() {
    var left = deadline ? Math.max(0, Math.round((deadline - Date.now()) / 1000)) : null;
    if (current && current.state === "qr") {
      $("countdown").textContent = left != null ? t("qr_countdown", { s: left }) : "";
    } else if (current && current.state === "pair_code") {
      $("code-countdown").textContent = left != null ? t("code_countdown", { s: left }) : "";
    } else if (current && current.state === "error") {
      var e = current.error;
      $("error-text").textContent = t(e, { s: left != null ? left : "" });
      if (e === "RATE_LIMIT" && left === 0) { deadline = null; follow(); }
    }
  }
  setInterval(tick, 1000);

  function follow() {
    if (source) { source.close(); }
    source = new EventSource(base + "/events");
    source.onmessage = function (m) { render(JSON.parse(m.data)); };
    source.onerror = function () {
      // EventSource hides the status: ask for the state, which carries it.
      source.close();
      source = null;
      fetch(base + "/state", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (s) {
        render(s);
        if (!(s.state === "error" && (FINAL[s.error] || s.error === "RATE_LIMIT"))) { setTimeout(follow, 3000); }
      }).catch(function () {
        render({ state: "error", error: "OFFLINE", status: 0 });
        setTimeout(follow, 5000);
      });
    };
  }

  function post(path, body) {
    render({ state: "waiting" });  // until the answer, not the state before the click
    var buttons = document.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {})
    }).then(function (r) { return r.json(); }).then(function (s) {
      render(s);
      if (!source && !(s.state === "error" && FINAL[s.error])) { follow(); }
    }).catch(function () {
      render({ state: "error", error: "OFFLINE", status: 0 });
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  function shownSection() {
    return ["qr-view", "code-view"].filter(function (id) { return !$(id).hidden; })[0] || "waiting";
  }
  $("pair-toggle").addEventListener("click", function () {
    if (current && current.state === "pair_code") {
      choosingPhone = false;
      post("/restart");  // back to QR codes: the session was asked for a pairing code
      return;
    }
    choosingPhone = !choosingPhone;
    show(shownSection());
    if (choosingPhone) { $("phone").focus(); }
  });
  $("pair-submit").addEventListener("click", function () {
    var phone = $("phone").value.replace(/[\s()+.\-]/g, "");
    if (!/^[1-9][0-9]{6,14}$/.test(phone)) {
      render({ state: "error", error: "INVALID_PHONE", status: 400 });
      choosingPhone = true;
      $("pair-form").hidden = false;
      return;
    }
    choosingPhone = false;
    post("/pair", { phone: phone });
  });
  $("retry").addEventListener("click", function () { post("/restart"); });

  render(JSON.parse($("initial").textContent));
  if (!(current.state === "connected" || (current.state === "error" && (FINAL[current.error] || current.error === "RATE_LIMIT")))) {
    follow();
  }
})();
