/* KeyWeb's shared helpers: the window.keyweb namespace, JSON requests with the CSRF token, formatting. */
"use strict";
window.keyweb = window.keyweb || {};

(function (kw) {
  kw.csrfToken = function () {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  /* fetch JSON; resolves {ok, status, body, ms} and never throws on HTTP errors, so callers can show
     the server's {"error": "..."} message. Network failures resolve with ok=false and a message. */
  kw.requestJSON = async function (url, { method = "GET", body = undefined } = {}) {
    const started = performance.now();
    const options = {
      method,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    };
    if (method !== "GET") {
      options.headers["X-CSRFToken"] = kw.csrfToken();
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return { ok: false, status: 0, body: { error: "the server cannot be reached; check your connection" },
               ms: performance.now() - started };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = { error: `the server answered ${response.status} without a readable message` };
    }
    return { ok: response.ok, status: response.status, body: data, ms: performance.now() - started };
  };

  kw.formatTime = function (seconds) {
    if (!isFinite(seconds) || seconds < 0) seconds = 0;
    const minutes = Math.floor(seconds / 60);
    const rest = Math.floor(seconds % 60);
    return `${minutes}:${String(rest).padStart(2, "0")}`;
  };

  kw.readJSONScript = function (id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  };

  kw.svg = function (name, attributes = {}, text = null) {
    const element = document.createElementNS("http://www.w3.org/2000/svg", name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (text !== null) element.textContent = text;
    return element;
  };

  /* True when a keystroke should go to a text field rather than to the page's shortcuts. */
  kw.isTyping = function (target) {
    if (!target) return false;
    const tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT" || target.isContentEditable) return true;
    if (tag !== "INPUT") return false;
    return !["range", "checkbox", "radio", "button", "submit"].includes(target.type);
  };
})(window.keyweb);
