/* The review page: the shared player, listening aids in the key being considered, and the decision, sent
   to the REST API (/api/v1/tracks/<id>/review) by one click on an annotator's label, by the select and
   Decide, or by keyboard (1–9 the annotators' labels, A–G tonic, R/P relative/parallel, Enter decide). */
"use strict";

(function (kw) {
  const $ = (id) => document.getElementById(id);
  const track = kw.readJSONScript("track-data");
  const keys = kw.readJSONScript("keys-data");
  const urls = kw.readJSONScript("api-urls");
  const choice = $("id_label");
  const NATURAL_TONICS = { c: 0, d: 2, e: 4, f: 5, g: 7, a: 9, b: 11 };
  const NO_KEY_NAMES = { ambiguous: "ambiguous", no_key: "no key", modulating: "modulating" };
  const state = { busy: false };

  const player = kw.Player.fromPage();
  kw.player = player;
  const aids = new kw.ListeningAids({ level: $("aid-level") });
  aids.setTuning(track.tuning_cents || 0);
  kw.aids = aids;
  player.load(track);

  const status = $("status");
  function announce(text, { error = false } = {}) {
    status.textContent = text;
    status.classList.toggle("error", error);
    status.setAttribute("role", error ? "alert" : "status");
  }

  function keyNamed(name) {
    return keys.find((key) => key.name === name) || null;
  }

  // The key for the aids: the one chosen in the form, else the model's best guess.
  function candidate() {
    const chosen = keyNamed(choice.value);
    if (chosen) return chosen;
    return track.suggestions.length ? keys[track.suggestions[0].index] : null;
  }
  function choose(index) {
    choice.value = keys[index].name;
    aids.follow(keys[index]);
  }
  choice.addEventListener("change", () => {
    const key = candidate();
    if (key) aids.follow(key);
  });

  async function followingTrackUrl() {
    const response = await kw.requestJSON(urls.reviews);
    const ids = response.ok ? response.body.results.map((entry) => entry.id) : [];
    const following = ids.find((id) => id > track.id) ?? ids.find((id) => id !== track.id);
    return following === undefined ? urls.review_list : `${urls.review_list}${following}/`;
  }

  async function decide(value) {
    if (state.busy) return;
    if (!value) {
      announce("Choose the key (or a no-key label) you decide on.", { error: true });
      return;
    }
    state.busy = true;
    document.body.classList.add("busy");
    try {
      const response = await kw.requestJSON(urls.decide, {
        method: "POST",
        body: { key: value, notes: $("id_notes").value },
      });
      if (!response.ok) {
        announce(kw.errorText(response.body), { error: true });
        return;
      }
      kw.decided = response.body;
      const shown = NO_KEY_NAMES[value] || value;
      const notice = `Decided ${shown} for “${response.body.title || response.body.original_filename}”.`;
      announce(notice);
      kw.noticeForNextPage(notice);
      window.location.assign(await followingTrackUrl());
    } finally {
      state.busy = false;
      document.body.classList.remove("busy");
    }
  }

  document.querySelectorAll(".decide-quick").forEach((button) => {
    button.addEventListener("click", () => decide(button.dataset.label));
  });
  $("decide-form").addEventListener("submit", (event) => {
    event.preventDefault();
    decide(choice.value);
  });

  function quick(number) {
    const button = document.querySelectorAll(".decide-quick")[number - 1];
    if (!button) {
      announce(`There is no annotator label number ${number} on this track.`, { error: true });
      return;
    }
    decide(button.dataset.label);
  }

  function setTonic(letter) {
    const current = keyNamed(choice.value);
    const minor = current ? current.mode === "minor" : false;
    choose(NATURAL_TONICS[letter] + (minor ? 12 : 0));
  }

  function withChosen(move) {
    const current = keyNamed(choice.value);
    if (!current) {
      announce("Choose a key first (A–G).", { error: true });
      return;
    }
    choose(move(current));
  }

  const SHORTCUTS = {
    " ": () => player.togglePlay(),
    ArrowLeft: (event) => player.seekBy(event.shiftKey ? -1 : -5),
    ArrowRight: (event) => player.seekBy(event.shiftKey ? 1 : 5),
    Home: () => player.toStart(),
    "[": () => player.loopStartHere(),
    "]": () => player.loopEndHere(),
    "\\": () => player.clearLoop(),
    r: () => withChosen((key) => key.relative),
    p: () => withChosen((key) => key.parallel),
    Enter: () => decide(choice.value),
    o: () => {
      const key = candidate();
      if (key) aids.toggleDrone(key);
    },
    h: () => {
      const key = candidate();
      if (key) aids.playChord(key);
    },
    i: () => {
      const key = candidate();
      if (key) aids.playCadence(key);
    },
    Escape: () => aids.stopAll(),
  };
  for (const letter of Object.keys(NATURAL_TONICS)) SHORTCUTS[letter] = () => setTonic(letter);
  for (let number = 1; number <= 9; number += 1) SHORTCUTS[String(number)] = () => quick(number);

  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.isComposing || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (kw.isTyping(target)) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const tag = target && target.tagName;
    if ((tag === "BUTTON" || tag === "A") && (event.key === " " || event.key === "Enter")) return;
    if (tag === "INPUT" && target.type === "range" && event.key.startsWith("Arrow")) return;
    const name = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const handler = SHORTCUTS[name];
    if (!handler) return;
    event.preventDefault();
    handler(event);
  });
})(window.keyweb);
