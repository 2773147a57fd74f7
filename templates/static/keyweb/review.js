/* The review page: the shared player, and listening aids in the key chosen in the decision form. */
"use strict";

(function (kw) {
  const $ = (id) => document.getElementById(id);
  const track = kw.readJSONScript("track-data");
  const keys = kw.readJSONScript("keys-data");
  const choice = $("id_label");

  const player = kw.Player.fromPage();
  kw.player = player;
  const aids = new kw.ListeningAids({ level: $("aid-level") });
  aids.setTuning(track.tuning_cents || 0);
  kw.aids = aids;
  player.load(track);

  // The key for the aids: the one chosen in the form, else the model's best guess.
  function candidate() {
    if (/^\d+$/.test(choice.value)) return keys[parseInt(choice.value, 10)];
    return track.prediction ? keys[track.prediction.top[0].index] : null;
  }
  choice.addEventListener("change", () => {
    const key = candidate();
    if (key) aids.follow(key);
  });

  const SHORTCUTS = {
    " ": () => player.togglePlay(),
    ArrowLeft: (event) => player.seekBy(event.shiftKey ? -1 : -5),
    ArrowRight: (event) => player.seekBy(event.shiftKey ? 1 : 5),
    Home: () => player.toStart(),
    "[": () => player.loopStartHere(),
    "]": () => player.loopEndHere(),
    "\\": () => player.clearLoop(),
    o: (key) => aids.toggleDrone(key),
    h: (key) => aids.playChord(key),
    i: (key) => aids.playCadence(key),
    Escape: () => aids.stopAll(),
  };
  document.addEventListener("keydown", (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (kw.isTyping(target)) return;
    const tag = target && target.tagName;
    if ((tag === "BUTTON" || tag === "A") && (event.key === " " || event.key === "Enter")) return;
    if (tag === "INPUT" && target.type === "range" && event.key.startsWith("Arrow")) return;
    const name = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    const handler = SHORTCUTS[name];
    if (!handler) return;
    event.preventDefault();
    if (["o", "h", "i"].includes(name)) {
      const key = candidate();
      if (key) handler(key);
    } else {
      handler(event);
    }
  });
})(window.keyweb);
