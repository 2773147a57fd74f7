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
    if (response.status === 204) return { ok: true, status: 204, body: null, ms: performance.now() - started };
    try {
      data = await response.json();
    } catch (error) {
      data = { error: `the server answered ${response.status} without a readable message` };
    }
    return { ok: response.ok, status: response.status, body: data, ms: performance.now() - started };
  };

  /* One sentence from an error body: the API's {"detail": ...} or a page endpoint's {"error": ...}. */
  kw.errorText = function (body) {
    if (!body) return "The server refused the request.";
    return body.detail || body.error || "The server refused the request.";
  };

    /* A notice for the page the browser goes to next (a decision, then the following track). */
  const NOTICE = "keyweb-notice";
  kw.noticeForNextPage = function (text) {
    try {
      sessionStorage.setItem(NOTICE, text);
    } catch (error) {
      /* private mode: the notice is a courtesy */
    }
  };
  kw.showNotice = function (text) {
    const main = document.getElementById("main");
    if (!main || !text) return;
    let list = main.querySelector("ul.messages");
    if (!list) {
      list = document.createElement("ul");
      list.className = "messages";
      list.setAttribute("aria-live", "polite");
      main.prepend(list);
    }
    const item = document.createElement("li");
    item.className = "success";
    item.textContent = text;
    list.append(item);
  };
  document.addEventListener("DOMContentLoaded", () => {
    let text = null;
    try {
      text = sessionStorage.getItem(NOTICE);
      sessionStorage.removeItem(NOTICE);
    } catch (error) {
      return;
    }
    kw.showNotice(text);
  });

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
