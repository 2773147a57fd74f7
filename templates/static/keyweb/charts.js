/* Small inline-SVG charts for the dashboard: bars, a line with points, a heatmap. No chart library. */
"use strict";

(function (kw) {
  const INK = "#1b1e23";
  const MUTED = "#4a5160";
  const GRID = "#e3e6ec";
  const ACCENT = "#0b5cad";
  const MINOR = "#7a3e9d";

  function frame(container, { width, height, label }) {
    const svg = kw.svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      role: "img",
      "aria-label": label,
      class: "chart-svg",
      preserveAspectRatio: "xMidYMid meet",
    });
    svg.append(kw.svg("title", {}, label));
    container.replaceChildren(svg);
    return svg;
  }

  function empty(container, text) {
    const note = document.createElement("p");
    note.className = "muted small chart-empty";
    note.textContent = text;
    container.replaceChildren(note);
  }

  /* A round tick step near raw (1, 2, 2.5 or 5 times a power of ten); whole numbers for counts. */
  function niceStep(raw, integer) {
    if (!(raw > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    let step = 10 * power;
    for (const multiple of [1, 2, 2.5, 5, 10]) {
      if (multiple * power >= raw) {
        step = multiple * power;
        break;
      }
    }
    return integer ? Math.max(1, Math.ceil(step)) : step;
  }

  function axis(maxValue, { integer = false, ticks = 4 } = {}) {
    const step = niceStep(maxValue / ticks, integer);
    const top = Math.max(step, step * Math.ceil(maxValue / step - 1e-9));
    const values = [];
    for (let value = 0; value <= top + step / 2; value += step) values.push(value);
    return { top, values };
  }

  function widthOf(container, fallback) {
    return Math.max(320, Math.round(container.clientWidth || fallback));
  }

  /* bars: [{label, value, color?}] */
  kw.barChart = function (container, { bars, label, yLabel = "", height = 220, integer = false, format = (v) => String(v) }) {
    if (!bars.length || bars.every((bar) => !bar.value)) {
      empty(container, "Nothing to show yet.");
      return;
    }
    const width = widthOf(container, bars.length * 32 + 60);
    const top = 24;
    const bottom = 24;
    const left = 44;
    const plotHeight = height - top - bottom;
    const plotWidth = width - left - 8;
    const scale = axis(Math.max(...bars.map((bar) => bar.value)), { integer });
    const svg = frame(container, { width, height, label });
    for (const value of scale.values) {
      const y = top + plotHeight - (value / scale.top) * plotHeight;
      svg.append(kw.svg("line", { x1: left, x2: width - 8, y1: y, y2: y, stroke: GRID }));
      svg.append(kw.svg("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis" }, format(value)));
    }
    const slot = plotWidth / bars.length;
    const barWidth = Math.min(slot * 0.7, 60);
    bars.forEach((bar, i) => {
      const barHeight = (bar.value / scale.top) * plotHeight;
      const x = left + i * slot + (slot - barWidth) / 2;
      const rect = kw.svg("rect", {
        x,
        y: top + plotHeight - barHeight,
        width: barWidth,
        height: Math.max(0, barHeight),
        fill: bar.color || ACCENT,
      });
      rect.append(kw.svg("title", {}, `${bar.label}: ${format(bar.value)}`));
      svg.append(rect);
      svg.append(kw.svg("text", { x: x + barWidth / 2, y: height - bottom + 15, "text-anchor": "middle", class: "axis" }, bar.label));
    });
    if (yLabel) svg.append(kw.svg("text", { x: 4, y: 12, class: "axis" }, yLabel));
  };

  /* points: [{x, y, label}] */
  kw.lineChart = function (container, { points, label, xLabel, yLabel, yMax = 1 }) {
    if (!points.length) {
      empty(container, "No trained versions yet: the curve appears after the first training.");
      return;
    }
    const width = widthOf(container, 420);
    const height = 240;
    const left = 48;
    const right = 30;
    const top = 16;
    const bottom = 40;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const xScale = axis(Math.max(...points.map((p) => p.x), 1), { integer: true, ticks: 5 });
    const svg = frame(container, { width, height, label });
    const xOf = (x) => left + (x / xScale.top) * plotWidth;
    const yOf = (y) => top + plotHeight - (Math.max(0, Math.min(yMax, y)) / yMax) * plotHeight;
    for (let i = 0; i <= 4; i += 1) {
      const value = (yMax * i) / 4;
      svg.append(kw.svg("line", { x1: left, x2: width - right, y1: yOf(value), y2: yOf(value), stroke: GRID }));
      svg.append(kw.svg("text", { x: left - 6, y: yOf(value) + 4, "text-anchor": "end", class: "axis" }, value.toFixed(2)));
    }
    for (const value of xScale.values) {
      svg.append(kw.svg("text", { x: xOf(value), y: height - bottom + 16, "text-anchor": "middle", class: "axis" }, String(value)));
    }
    svg.append(kw.svg("text", { x: left + plotWidth / 2, y: height - 4, "text-anchor": "middle", class: "axis" }, xLabel));
    svg.append(kw.svg("text", { x: 12, y: top + plotHeight / 2, transform: `rotate(-90 12 ${top + plotHeight / 2})`, "text-anchor": "middle", class: "axis" }, yLabel));
    const sorted = [...points].sort((a, b) => a.x - b.x);
    svg.append(kw.svg("polyline", {
      points: sorted.map((p) => `${xOf(p.x)},${yOf(p.y)}`).join(" "),
      fill: "none",
      stroke: ACCENT,
      "stroke-width": 2,
    }));
    // Versions trained on the same number of labels would sit on one spot: spread them sideways a little
    // and stack their names, so each stays readable.
    const sameX = new Map();
    for (const point of sorted) sameX.set(point.x, (sameX.get(point.x) || 0) + 1);
    const seen = new Map();
    for (const point of sorted) {
      const count = sameX.get(point.x);
      const index = seen.get(point.x) || 0;
      seen.set(point.x, index + 1);
      const cx = xOf(point.x) + (index - (count - 1) / 2) * 9;
      const dot = kw.svg("circle", { cx, cy: yOf(point.y), r: 4, fill: ACCENT });
      dot.append(kw.svg("title", {}, `${point.label}: ${point.y.toFixed(3)} with ${point.x} labels`));
      svg.append(dot);
      svg.append(kw.svg("text", { x: cx - 6, y: yOf(point.y) - 8 - index * 12, "text-anchor": "end", class: "axis" }, point.label));
    }
  };

  /* matrix[row][column] of counts; rows are the reference, columns the estimate. Each cell shows its
     count; the colour scale under the matrix says what the shades mean (0 is blank). */
  const HEAT = [11, 92, 173];
  function heatFill(share) {
    return `rgba(${HEAT.join(", ")}, ${(0.12 + 0.88 * share).toFixed(3)})`;
  }

  kw.heatmap = function (container, { matrix, labels, label }) {
    const n = labels.length;
    const cell = 18;
    const left = 44;
    const top = 44;
    const right = 34;
    const legendTop = top + n * cell + 30;
    const size = left + n * cell + right;
    const svg = frame(container, { width: size, height: legendTop + 34, label });
    const max = Math.max(1, ...matrix.flat());
    const total = matrix.flat().reduce((a, b) => a + b, 0);
    matrix.forEach((row, r) => {
      const rowTotal = row.reduce((a, b) => a + b, 0);
      row.forEach((count, c) => {
        const share = count / max;
        const x = left + c * cell;
        const y = top + r * cell;
        const rect = kw.svg("rect", {
          x,
          y,
          width: cell - 1,
          height: cell - 1,
          fill: count ? heatFill(share) : r === c ? "#eef3fa" : "#f6f7f9",
          "data-count": String(count),
        });
        rect.append(kw.svg("title", {}, `reference ${labels[r]}, predicted ${labels[c]}: ${count}${rowTotal ? ` of ${rowTotal}` : ""}`));
        svg.append(rect);
        if (count) {
          svg.append(kw.svg("text", {
            x: x + (cell - 1) / 2,
            y: y + cell * 0.68,
            "text-anchor": "middle",
            class: "cell-count",
            fill: share > 0.45 ? "#fff" : INK,
          }, String(count)));
        }
      });
      svg.append(kw.svg("text", { x: left - 4, y: top + r * cell + cell * 0.7, "text-anchor": "end", class: "axis tiny" }, labels[r]));
      svg.append(kw.svg("text", { x: left + n * cell + 4, y: top + r * cell + cell * 0.7, class: "axis tiny" }, rowTotal ? String(rowTotal) : ""));
    });
    labels.forEach((name, c) => {
      const x = left + c * cell + cell * 0.7;
      svg.append(kw.svg("text", { x, y: top - 4, transform: `rotate(-60 ${x} ${top - 4})`, class: "axis tiny" }, name));
    });
    svg.append(kw.svg("text", { x: left + n * cell + 4, y: top - 6, class: "axis tiny" }, "n"));
    svg.append(kw.svg("text", { x: left, y: top + n * cell + 16, class: "axis" }, `rows: true key · columns: predicted key · ${total} tracks`));
    // The colour scale: a gradient bar from 1 to the largest count (a path, so the cells stay the only rects).
    const gradientId = `heat-scale-${Math.random().toString(36).slice(2, 8)}`;
    const defs = kw.svg("defs");
    const gradient = kw.svg("linearGradient", { id: gradientId, x1: "0", x2: "1", y1: "0", y2: "0" });
    gradient.append(kw.svg("stop", { offset: "0", "stop-color": heatFill(1 / max) }));
    gradient.append(kw.svg("stop", { offset: "1", "stop-color": heatFill(1) }));
    defs.append(gradient);
    svg.append(defs);
    const barWidth = Math.min(220, n * cell);
    const scale = kw.svg("path", {
      d: `M ${left} ${legendTop} h ${barWidth} v 10 h ${-barWidth} Z`,
      fill: `url(#${gradientId})`,
      stroke: "#c5ccd6",
      class: "heat-scale",
    });
    svg.append(scale);
    svg.append(kw.svg("text", { x: left, y: legendTop + 24, class: "axis tiny" }, "1"));
    svg.append(kw.svg("text", { x: left + barWidth, y: legendTop + 24, "text-anchor": "end", class: "axis tiny" }, `${max} tracks`));
    svg.append(kw.svg("text", { x: left + barWidth + 8, y: legendTop + 9, class: "axis tiny" }, "colour: tracks in the cell"));
  };

  kw.chartColors = { ACCENT, MINOR, INK, MUTED };
})(window.keyweb);
