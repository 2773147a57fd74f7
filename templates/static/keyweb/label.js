/* The label page: shows the leased track, takes a key (or a no-key label) by click or keystroke, submits it
   and shows the next track without reloading. It talks to the REST API (/api/v1/queue/*) with the
   session cookie and the CSRF header. The model's suggestions are shown but never preselected; held-out
   tracks come without them (docs/ui.md). Submit→next round-trip times land in window.keyweb.timings. */
"use strict";

(function (kw) {
  const NATURAL_TONICS = { c: 0, d: 2, e: 4, f: 5, g: 7, a: 9, b: 11 };
  const NO_KEY_NAMES = { ambiguous: "ambiguous", no_key: "no key", modulating: "modulating" };

  const $ = (id) => document.getElementById(id);
  const keys = kw.readJSONScript("keys-data");
  const circleLayout = kw.readJSONScript("circle-data");
  const URLS = kw.readJSONScript("api-urls");

  kw.timings = [];
  const state = { track: null, shownAt: 0, busy: false, codes: false };

  const status = $("status");
  function announce(text, { error = false } = {}) {
    status.textContent = text;
    status.classList.toggle("error", error);
    status.setAttribute("role", error ? "alert" : "status");
  }

  const player = kw.Player.fromPage();
  kw.player = player;

  const aids = new kw.ListeningAids({
    level: $("aid-level"),
    onChange: ({ drone }) => {
      const toggle = $("drone-toggle");
      toggle.setAttribute("aria-pressed", drone ? "true" : "false");
      toggle.classList.toggle("on", drone);
    },
  });
  kw.aids = aids;

  const picker = new kw.CirclePicker({
    container: $("circle"),
    keys,
    circle: circleLayout,
    onSelect: (key) => {
      $("picked-name").textContent = key.name;
      $("picked-codes").textContent = `${key.camelot} · ${key.open_key}`;
      aids.follow(key);
    },
  });
  kw.picker = picker;

  function pickedKey() {
    return picker.selected === null ? null : keys[picker.selected];
  }

  // --- showing a track -----------------------------------------------------------------------------------
  // In blind mode the API already sends "Track 1234" as the title and no artist or file name.
  function displayName(track) {
    return track.title || track.filename || `Track ${track.id}`;
  }

  function updateProgress(progress) {
    if (!progress) return;
    $("progress-today").textContent = progress.labeled_today;
    $("progress-total").textContent = progress.labeled_total;
    $("progress-queue").textContent = progress.queue_size;
  }

  function suggestionNote(track) {
    if (track.blind) return track.blind;
    const model = track.suggestion_model;
    if (!model || !track.suggestions.length) return "No prediction for this track yet: choose the key by ear.";
    return `Model ${model.name}${model.is_active ? "" : " (not the active model)"}. Press 1, 2 or 3 to submit.`;
  }

  function renderSuggestions(track) {
    const list = $("suggestions");
    list.replaceChildren();
    $("model-name").textContent = suggestionNote(track);
    $("model-name").classList.toggle("blind", Boolean(track.blind));
    track.suggestions.forEach((entry, rank) => {
      const key = keys[entry.index];
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "suggestion";
      button.dataset.rank = String(rank + 1);
      button.setAttribute("aria-keyshortcuts", String(rank + 1));
      const percent = Math.round(entry.probability * 100);
      button.innerHTML = `<kbd>${rank + 1}</kbd> <span class="name"></span> <span class="codes muted"></span>
        <span class="bar" aria-hidden="true"><span style="width:${percent}%"></span></span>
        <span class="percent">${percent}%</span>`;
      button.querySelector(".name").textContent = key.name;
      button.querySelector(".codes").textContent = key.camelot;
      button.setAttribute("aria-label", `Submit ${key.name}, model probability ${percent}%`);
      button.addEventListener("click", (event) => {
        if (event.detail > 0) button.blur();
        submitKey(entry.index);
      });
      item.append(button);
      list.append(item);
    });
  }

  function showTrack(track, { autoplay = false, prefill = null } = {}) {
    state.track = track;
    kw.currentTrackId = track ? track.id : null;
    kw.track = track;
    $("empty").hidden = Boolean(track);
    $("workspace").hidden = !track;
    if (!track) {
      player.unload();
      aids.stopAll();
      return;
    }
    $("track-title").textContent = displayName(track);
    const details = [track.artist, kw.formatTime(track.duration_s), `track #${track.id}`];
    if (track.tuning_cents !== null && track.tuning_cents !== undefined) {
      const rounded = Math.round(track.tuning_cents) || 0; // never "-0"
      details.push(`tuning ${rounded > 0 ? "+" : ""}${rounded} cents`);
    }
    $("track-meta").textContent = details.filter(Boolean).join(" · ");
    const cents = track.tuning_cents || 0;
    aids.setTuning(cents);
    $("aids-tuning").textContent = `A = ${(440 * Math.pow(2, cents / 1200)).toFixed(1)} Hz`;
    picker.setProbabilities(track.probabilities, track.suggestions);
    renderSuggestions(track);
    // Never preselect the model's key (it would anchor the listener); only a withdrawn label comes back.
    picker.clear();
    $("picked-name").textContent = "none";
    $("picked-codes").textContent = "";
    const start = prefill ? keyIndexOf(prefill.key) : null;
    if (start !== null) picker.select(start);
    $("tuning").value = prefill && prefill.tuning_cents !== null ? String(prefill.tuning_cents) : "";
    $("notes").value = prefill ? prefill.notes || "" : "";
    player.load(track, { autoplay });
    state.shownAt = performance.now();
  }

  // --- actions -------------------------------------------------------------------------------------------
  async function send(url, body) {
    if (state.busy) return null;
    state.busy = true;
    document.body.classList.add("busy");
    try {
      const response = await kw.requestJSON(url, { method: "POST", body });
      if (!response.ok) announce(kw.errorText(response.body), { error: true });
      return response;
    } finally {
      state.busy = false;
      document.body.classList.remove("busy");
    }
  }

  function shouldAutoplay() {
    return $("autoplay").checked;
  }

  // Playback speed: the audio element keeps the pitch (preservesPitch), so the key does not change.
  const SPEEDS = [0.5, 0.75, 1];
  function setSpeed(rate) {
    player.setRate(rate);
    document.querySelectorAll("[data-speed]").forEach((button) => {
      button.setAttribute("aria-pressed", parseFloat(button.dataset.speed) === rate ? "true" : "false");
    });
    announce(`Playback speed ${rate}× (pitch kept).`);
  }
  function stepSpeed(direction) {
    const now = SPEEDS.indexOf(player.rate);
    const next = SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, (now < 0 ? 2 : now) + direction))];
    setSpeed(next);
  }
  document.querySelectorAll("[data-speed]").forEach((button) => {
    button.addEventListener("click", (event) => {
      if (event.detail > 0) button.blur();
      setSpeed(parseFloat(button.dataset.speed));
    });
  });

  // A second tab, or a lease that ran out while the tab was hidden: move to the track this person
  // holds now, and say so, instead of staying stuck on a track that is no longer theirs.
  async function recoverStale(reason) {
    const next = await fetchNext();
    if (next === undefined) return;
    const from = state.track ? state.track.id : null;
    showTrack(next, { autoplay: false });
    kw.recovered = (kw.recovered || 0) + 1;
    if (!next) announce(`${reason} Nothing is left to label for you right now.`);
    else if (next.id !== from) announce(`${reason} Here is the track you hold now.`);
  }
  document.addEventListener("visibilitychange", async () => {
    if (document.visibilityState !== "visible" || !state.track || state.busy) return;
    const response = await kw.requestJSON(URLS.next, { method: "POST" });
    if (response.ok && response.status === 200 && response.body.id !== state.track.id) {
      updateProgress(response.body.progress);
      showTrack(response.body, { autoplay: false });
      kw.recovered = (kw.recovered || 0) + 1;
      announce("This tab had fallen behind (you labeled in another tab); here is the track you hold now.");
    }
  });

  async function submit(labelBody, description) {
    if (!state.track) return;
    const tuning = $("tuning").value.trim();
    const body = {
      track: state.track.id,
      ...labelBody,
      tuning_cents: tuning === "" ? null : tuning,
      notes: $("notes").value,
      time_spent_s: Math.round((performance.now() - state.shownAt) / 100) / 10,
      next: true, // the next leased track comes in the same answer: one round trip
    };
    const title = displayName(state.track);
    const started = performance.now();
    const response = await send(URLS.submit, body);
    if (response && response.status === 409) {
      await recoverStale(`“${title}” was already labeled (perhaps in another tab); nothing was saved.`);
      return;
    }
    if (!response || !response.ok) return;
    kw.timings.push(performance.now() - started);
    const next = await takeNext(response.body.next);
    announce(`Saved ${description} for “${title}”.${next ? "" : " That was the last track in your queue."}`);
    showTrack(next, { autoplay: shouldAutoplay() });
  }

  /* The next leased track (null when the queue is empty, undefined on an error, already announced). */
  async function fetchNext() {
    const response = await kw.requestJSON(URLS.next, { method: "POST" });
    if (!response.ok) {
      announce(kw.errorText(response.body), { error: true });
      return undefined;
    }
    if (response.status === 204) {
      const progress = await kw.requestJSON(URLS.progress);
      if (progress.ok) updateProgress(progress.body);
      return null;
    }
    updateProgress(response.body.progress);
    return response.body;
  }

  /* The track a submit or skip answered with; when none is left, the counts come from /progress. */
  async function takeNext(track) {
    if (track) {
      updateProgress(track.progress);
      return track;
    }
    const progress = await kw.requestJSON(URLS.progress);
    if (progress.ok) updateProgress(progress.body);
    return null;
  }

  function keyIndexOf(name) {
    const key = keys.find((entry) => entry.name === name);
    return key ? key.index : null;
  }

  function submitKey(index) {
    submit({ key: keys[index].name }, keys[index].name);
  }

  function submitPicked() {
    const key = pickedKey();
    if (!key) {
      announce("Select a key on the circle first (or press 1 to take the model's suggestion).", { error: true });
      return;
    }
    submitKey(key.index);
  }

  function submitSuggestion(rank) {
    const suggestions = state.track ? state.track.suggestions : [];
    if (!suggestions[rank - 1]) {
      const why = state.track && state.track.blind ? " (held-out track: no suggestions)" : "";
      announce(`There is no model suggestion number ${rank} for this track${why}.`, { error: true });
      return;
    }
    submitKey(suggestions[rank - 1].index);
  }

  function submitNoKey(label) {
    submit({ key: label }, NO_KEY_NAMES[label]);
  }

  async function skip() {
    if (!state.track) return;
    const title = displayName(state.track);
    const response = await send(URLS.skip, { track: state.track.id, next: true });
    if (!response || !response.ok) return;
    const next = await takeNext(response.body.next);
    announce(`Skipped “${title}”; it will not come back to you today (see “Skipped today” to put it back).`);
    showTrack(next, { autoplay: shouldAutoplay() });
    refreshSkipped();
  }

  // --- skipped tracks: listed with a count, each can be put back into your queue ---------------------------
  async function refreshSkipped() {
    const response = await kw.requestJSON(URLS.skipped);
    if (!response.ok) return;
    const skips = response.body;
    $("skipped-count").textContent = String(skips.length);
    const list = $("skipped-list");
    list.replaceChildren();
    for (const skip of skips) {
      const item = document.createElement("li");
      item.dataset.trackId = String(skip.track);
      const name = document.createElement("span");
      name.textContent = skip.title;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "put-back";
      button.textContent = "Put back";
      button.setAttribute("aria-label", `Put back “${skip.title}”`);
      button.addEventListener("click", () => putBack(skip));
      item.append(name, " ", button);
      list.append(item);
    }
  }

  async function putBack(skip) {
    const response = await kw.requestJSON(`${URLS.skipped}/${skip.track}`, { method: "DELETE" });
    if (!response.ok) {
      announce(kw.errorText(response.body), { error: true });
      return;
    }
    announce(`Put back “${skip.title}”: it can come to you again.`);
    await refreshSkipped();
    if (!state.track) {
      const next = await fetchNext();
      if (next !== undefined) showTrack(next, { autoplay: shouldAutoplay() });
    } else {
      const progress = await kw.requestJSON(URLS.progress);
      if (progress.ok) updateProgress(progress.body);
    }
  }

  async function undo() {
    const response = await send(URLS.undo, {});
    if (!response || !response.ok) return;
    const { undone, track } = response.body;
    updateProgress(track.progress);
    const shown = undone.key || NO_KEY_NAMES[undone.label] || undone.label;
    announce(`Withdrew your label ${shown} for “${displayName(track)}”. Change it and submit again.`);
    showTrack(track, { prefill: undone });
  }

  async function checkAgain() {
    const next = await fetchNext();
    if (next === undefined) return;
    showTrack(next);
    if (!next) announce("Still nothing to label.");
  }

  function withKey(action) {
    const key = pickedKey();
    if (!key) {
      announce("Select a key first.", { error: true });
      return;
    }
    action(key);
  }

  function toggleCodes() {
    state.codes = !state.codes;
    picker.showCodes(state.codes);
    $("codes-toggle").setAttribute("aria-pressed", state.codes ? "true" : "false");
  }

  function moveTonic(semitones) {
    const key = pickedKey();
    if (!key) return;
    picker.select(((key.tonic + semitones + 12) % 12) + (key.mode === "minor" ? 12 : 0));
  }

  function setTonic(letter) {
    const key = pickedKey();
    const minor = key ? key.mode === "minor" : false;
    picker.select(NATURAL_TONICS[letter] + (minor ? 12 : 0));
  }

  const ACTIONS = {
    "toggle-play": () => player.togglePlay(),
    "loop-start": () => player.loopStartHere(),
    "loop-end": () => player.loopEndHere(),
    "loop-clear": () => player.clearLoop(),
    relative: () => withKey((key) => picker.select(key.relative)),
    parallel: () => withKey((key) => picker.select(key.parallel)),
    codes: toggleCodes,
    "submit-picked": submitPicked,
    ambiguous: () => submitNoKey("ambiguous"),
    no_key: () => submitNoKey("no_key"),
    modulating: () => submitNoKey("modulating"),
    drone: () => withKey((key) => aids.toggleDrone(key)),
    chord: () => withKey((key) => aids.playChord(key)),
    cadence: () => withKey((key) => aids.playCadence(key)),
    skip,
    undo,
  };

  document.querySelectorAll("[data-action]").forEach((button) => {
    button.addEventListener("click", (event) => {
      // A mouse click leaves focus on the button; drop it so Space/Enter go back to the shortcuts.
      if (event.detail > 0) button.blur();
      ACTIONS[button.dataset.action]();
    });
  });
  $("check-again").addEventListener("click", checkAgain);

  // --- keyboard ------------------------------------------------------------------------------------------
  const SHORTCUTS = {
    " ": () => player.togglePlay(),
    ArrowLeft: (event) => player.seekBy(event.shiftKey ? -1 : -5),
    ArrowRight: (event) => player.seekBy(event.shiftKey ? 1 : 5),
    ArrowUp: () => announce(`Reference level ${Math.round(aids.changeLevel(0.1) * 100)}%`),
    ArrowDown: () => announce(`Reference level ${Math.round(aids.changeLevel(-0.1) * 100)}%`),
    Home: () => player.toStart(),
    "[": ACTIONS["loop-start"],
    "]": ACTIONS["loop-end"],
    "\\": ACTIONS["loop-clear"],
    1: () => submitSuggestion(1),
    2: () => submitSuggestion(2),
    3: () => submitSuggestion(3),
    "=": () => moveTonic(1),
    "+": () => moveTonic(1),
    "#": () => moveTonic(1),
    "-": () => moveTonic(-1),
    ",": () => picker.rotate(-1),
    ".": () => picker.rotate(1),
    r: ACTIONS.relative,
    p: ACTIONS.parallel,
    k: ACTIONS.codes,
    Enter: submitPicked,
    z: ACTIONS.ambiguous,
    x: ACTIONS.no_key,
    m: ACTIONS.modulating,
    o: ACTIONS.drone,
    h: ACTIONS.chord,
    i: ACTIONS.cadence,
    s: skip,
    u: undo,
    t: () => $("tuning").focus(),
    n: () => $("notes").focus(),
    "?": () => {
      const list = $("shortcuts");
      list.open = !list.open;
      if (list.open) list.querySelector("summary").focus();
    },
    "<": () => stepSpeed(-1),
    ">": () => stepSpeed(1),
    Escape: () => aids.stopAll(),
  };
  for (const letter of Object.keys(NATURAL_TONICS)) SHORTCUTS[letter] = () => setTonic(letter);

  const NATIVE_ON_CONTROLS = new Set([" ", "Enter"]);
  const NATIVE_ON_RANGES = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing) return;
    const target = event.target;
    if (kw.isTyping(target)) {
      if (event.key === "Escape") {
        target.blur();
        event.preventDefault();
      } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submitPicked();
      }
      return;
    }
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = target && target.tagName;
    if ((tag === "BUTTON" || tag === "A" || tag === "SUMMARY") && NATIVE_ON_CONTROLS.has(event.key)) return;
    if (tag === "INPUT" && target.type === "range" && NATIVE_ON_RANGES.has(event.key)) return;
    if (tag === "INPUT" && target.type === "checkbox" && event.key === " ") return;
    const name = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const handler = SHORTCUTS[name];
    if (!handler) return;
    if (!state.track && !["u", "?"].includes(name)) return;
    event.preventDefault();
    handler(event);
  });

  // The first track is leased by the page's script, not by the page's GET, so a reload does not lease.
  kw.ready = fetchNext().then((track) => {
    if (track !== undefined) showTrack(track ?? null, { autoplay: shouldAutoplay() });
  });
  refreshSkipped();
})(window.keyweb);
