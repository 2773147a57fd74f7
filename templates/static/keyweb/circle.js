/* The key picker: the circle of fifths as an SVG radio group, major keys outside and their relative minors
   inside, shaded by the model's probabilities, with Camelot / Open Key codes on request. */
"use strict";

(function (kw) {
  const SIZE = 320;
  const CENTER = SIZE / 2;
  const RINGS = { major: [102, 156], minor: [58, 102] };

  function polar(radius, degrees) {
    const radians = ((degrees - 90) * Math.PI) / 180;
    return [CENTER + radius * Math.cos(radians), CENTER + radius * Math.sin(radians)];
  }

  function sector(inner, outer, from, to) {
    const [x0, y0] = polar(outer, from);
    const [x1, y1] = polar(outer, to);
    const [x2, y2] = polar(inner, to);
    const [x3, y3] = polar(inner, from);
    return `M${x0},${y0} A${outer},${outer} 0 0 1 ${x1},${y1} L${x2},${y2} A${inner},${inner} 0 0 0 ${x3},${y3} Z`;
  }

  class CirclePicker {
    constructor({ container, keys, circle, onSelect }) {
      this.keys = keys;
      this.circle = circle;
      this.onSelect = onSelect || (() => {});
      this.selected = null;
      this.codes = false;
      this.wedges = new Map(); // key index -> {group, path, label, code, badge, step, ring}
      this.position = new Map(); // key index -> {step, ring}
      circle.forEach((slot, step) => {
        this.position.set(slot.major, { step, ring: "major" });
        this.position.set(slot.minor, { step, ring: "minor" });
      });
      this.render(container);
    }

    render(container) {
      const svg = kw.svg("svg", {
        viewBox: `0 0 ${SIZE} ${SIZE}`,
        role: "radiogroup",
        "aria-label": "Key, on the circle of fifths: major keys outside, relative minors inside",
        class: "circle-svg",
      });
      this.centerText = kw.svg("text", { x: CENTER, y: CENTER - 4, class: "circle-center", "text-anchor": "middle" }, "");
      this.centerCode = kw.svg("text", { x: CENTER, y: CENTER + 14, class: "circle-center-code", "text-anchor": "middle" }, "");
      this.circle.forEach((slot, step) => {
        for (const ring of ["major", "minor"]) {
          const index = slot[ring];
          const key = this.keys[index];
          const [inner, outer] = RINGS[ring];
          const from = step * 30 - 15;
          const to = step * 30 + 15;
          const group = kw.svg("g", {
            role: "radio",
            tabindex: "-1",
            "aria-checked": "false",
            "aria-label": `${key.name} (Camelot ${key.camelot}, Open Key ${key.open_key})`,
            class: `wedge ${ring}`,
            "data-key": String(index),
          });
          const path = kw.svg("path", { d: sector(inner, outer, from, to), class: "wedge-shape" });
          const middle = (inner + outer) / 2;
          const [tx, ty] = polar(middle, step * 30);
          const label = kw.svg("text", { x: tx, y: ty, class: "wedge-name", "text-anchor": "middle", "dominant-baseline": "central" }, key.short);
          const code = kw.svg("text", { x: tx, y: ty + 13, class: "wedge-code", "text-anchor": "middle", "dominant-baseline": "central" }, "");
          const [bx, by] = polar(ring === "major" ? outer - 9 : inner + 8, step * 30 + 10);
          const badge = kw.svg("text", { x: bx, y: by, class: "wedge-badge", "text-anchor": "middle", "dominant-baseline": "central" }, "");
          group.append(path, label, code, badge);
          group.addEventListener("click", () => this.select(index, { focus: true }));
          group.addEventListener("keydown", (event) => this.onKey(event, index));
          svg.append(group);
          this.wedges.set(index, { group, path, label, code, badge });
        }
      });
      svg.append(this.centerText, this.centerCode);
      container.replaceChildren(svg);
      this.svg = svg;
      this.wedges.get(this.circle[0].major).group.setAttribute("tabindex", "0");
    }

    onKey(event, index) {
      const { step, ring } = this.position.get(index);
      let target = null;
      if (event.key === "ArrowRight") target = this.circle[(step + 1) % 12][ring];
      else if (event.key === "ArrowLeft") target = this.circle[(step + 11) % 12][ring];
      else if (event.key === "ArrowUp") target = this.circle[step].major;
      else if (event.key === "ArrowDown") target = this.circle[step].minor;
      else if (event.key === " ") target = index;
      if (target !== null) {
        event.preventDefault();
        event.stopPropagation();
        this.select(target, { focus: true });
      }
    }

    select(index, { focus = false, silent = false } = {}) {
      if (index === null || index === undefined || !this.keys[index]) return;
      if (this.selected !== null) {
        const previous = this.wedges.get(this.selected);
        previous.group.setAttribute("aria-checked", "false");
        previous.group.classList.remove("selected");
      }
      // Roving tabindex: the selected key is the circle's one tab stop.
      for (const other of this.wedges.values()) other.group.setAttribute("tabindex", "-1");
      this.selected = index;
      const wedge = this.wedges.get(index);
      wedge.group.setAttribute("aria-checked", "true");
      wedge.group.setAttribute("tabindex", "0");
      wedge.group.classList.add("selected");
      const key = this.keys[index];
      this.centerText.textContent = key.short;
      this.centerCode.textContent = this.codes ? `${key.camelot} · ${key.open_key}` : key.mode;
      if (focus) wedge.group.focus();
      if (!silent) this.onSelect(key);
    }

    /* No key selected (a new track starts this way: the model's guess is never preselected). */
    clear() {
      if (this.selected !== null) {
        const previous = this.wedges.get(this.selected);
        previous.group.setAttribute("aria-checked", "false");
        previous.group.classList.remove("selected");
      }
      this.selected = null;
      this.centerText.textContent = "";
      this.centerCode.textContent = "";
      for (const other of this.wedges.values()) other.group.setAttribute("tabindex", "-1");
      this.wedges.get(this.circle[0].major).group.setAttribute("tabindex", "0");
    }

    /* Step around the circle (+1 = a fifth up) keeping major/minor. */
    rotate(steps) {
      if (this.selected === null) return;
      const { step, ring } = this.position.get(this.selected);
      this.select(this.circle[(step + steps + 12) % 12][ring]);
    }

    setProbabilities(probabilities, top) {
      const ranks = new Map((top || []).map((entry, i) => [entry.index, i + 1]));
      for (const [index, wedge] of this.wedges) {
        const p = probabilities ? probabilities[index] || 0 : 0;
        // Square root so the second and third choices stay visible next to a confident first.
        wedge.path.style.setProperty("--p", String(Math.min(1, Math.sqrt(p))));
        wedge.badge.textContent = ranks.has(index) ? String(ranks.get(index)) : "";
        const key = this.keys[index];
        const chance = probabilities ? `, model ${Math.round(p * 100)}%` : "";
        wedge.group.setAttribute("aria-label", `${key.name} (Camelot ${key.camelot}, Open Key ${key.open_key})${chance}`);
      }
    }

    showCodes(show) {
      this.codes = show;
      for (const [index, wedge] of this.wedges) {
        const key = this.keys[index];
        wedge.code.textContent = show ? `${key.camelot} ${key.open_key}` : "";
        wedge.label.setAttribute("dy", show ? "-6" : "0");
      }
      if (this.selected !== null) this.select(this.selected, { silent: true });
    }
  }

  kw.CirclePicker = CirclePicker;
})(window.keyweb);
