/* The dashboard: draws the charts, requests a training and follows it by polling a small JSON endpoint;
   when the training ends the model-versions section is refreshed in place. */
"use strict";

(function (kw) {
  const $ = (id) => document.getElementById(id);
  const STATUS_URL = "/dashboard/training/status.json";
  const TRAIN_URL = "/dashboard/training/";
  const RUNNING = new Set(["queued", "training"]);

  function drawCharts() {
    const charts = kw.readJSONScript("charts-data");
    if (!charts) return;
    const keys = charts.keys;
    kw.barChart($("chart-distribution"), {
      bars: charts.distribution.keys.map((count, index) => ({
        label: keys[index].short,
        value: count,
        color: keys[index].mode === "minor" ? kw.chartColors.MINOR : kw.chartColors.ACCENT,
      })),
      label: "Consensus labels per key: major keys in blue, minor keys in purple",
      yLabel: "tracks",
      integer: true,
    });
    kw.lineChart($("chart-learning"), {
      points: charts.learning_curve.map((p) => ({ x: p.n_training_labels, y: p.weighted, label: p.name })),
      label: "Weighted score of each trained version against its number of training labels",
      xLabel: "training labels",
      yLabel: "weighted score",
    });
    kw.barChart($("chart-calibration"), {
      bars: charts.calibration.map((entry) => ({ label: entry.name, value: entry.ece })),
      label: "Expected calibration error per model version (lower is better)",
      format: (v) => v.toFixed(3).replace(/0$/, ""),
      yLabel: "ECE",
    });
    const select = $("confusion-version");
    select.replaceChildren();
    const versions = Object.keys(charts.confusions);
    for (const id of versions) {
      const row = document.querySelector(`tr[data-version-id="${id}"] th`);
      const option = document.createElement("option");
      option.value = id;
      option.textContent = row ? row.firstChild.textContent.trim() : `version ${id}`;
      if (id === charts.confusion_shown) option.selected = true;
      select.append(option);
    }
    const drawConfusion = () => {
      if (!select.value) {
        $("chart-confusion").textContent = "No version has test-split results yet.";
        return;
      }
      kw.heatmap($("chart-confusion"), {
        matrix: charts.confusions[select.value],
        labels: keys.map((key) => key.short),
        label: `Confusion matrix of ${select.options[select.selectedIndex].textContent} on the test split`,
      });
    };
    select.onchange = drawConfusion;
    select.disabled = versions.length === 0;
    drawConfusion();
  }

  // --- training -----------------------------------------------------------------------------------------
  let polling = null;
  kw.trainingStatus = kw.readJSONScript("training-data");

  function showStatus(status) {
    kw.trainingStatus = status;
    const progress = $("training-progress");
    const text = $("training-text");
    const error = $("training-error");
    const version = status.version;
    if (!version) {
      text.textContent = "No model has been trained here yet.";
      progress.hidden = true;
      return;
    }
    const running = RUNNING.has(status.status);
    progress.hidden = !running;
    progress.value = status.progress || 0;
    $("retrain").disabled = running;
    if (running) {
      text.textContent = `${version.name}: ${version.status_label.toLowerCase()} — ${Math.round((status.progress || 0) * 100)}%`;
    } else if (status.status === "ready") {
      const score = version.weighted === null ? "no test labels" : `weighted ${version.weighted.toFixed(3)}`;
      text.textContent = `${version.name} is ready (${score}).`;
    } else if (status.status === "failed") {
      text.textContent = `${version.name} failed.`;
    }
    error.hidden = status.status !== "failed";
    error.textContent = status.status === "failed" ? `Training of ${version.name} failed: ${status.error}` : "";
  }

  async function refreshModels() {
    // Re-read the dashboard and swap in the versions section, so new metrics show without a reload.
    const response = await fetch(window.location.pathname, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("models");
    if (fresh) {
      $("models").replaceWith(document.importNode(fresh, true));
      drawCharts();
    }
  }

  async function poll() {
    const response = await kw.requestJSON(STATUS_URL);
    if (!response.ok) {
      $("training-text").textContent = response.body.error || "Could not read the training status.";
      polling = setTimeout(poll, 3000);
      return;
    }
    showStatus(response.body);
    if (RUNNING.has(response.body.status)) {
      polling = setTimeout(poll, 1000);
    } else {
      polling = null;
      await refreshModels();
    }
  }

  function startPolling() {
    if (polling) clearTimeout(polling);
    polling = setTimeout(poll, 500);
  }

  $("retrain-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("retrain").disabled = true;
    const response = await kw.requestJSON(TRAIN_URL, { method: "POST" });
    if (!response.ok) {
      $("retrain").disabled = false;
      const error = $("training-error");
      error.hidden = false;
      error.textContent = response.body.error || "The training could not be requested.";
      return;
    }
    showStatus(response.body);
    $("training-text").textContent = response.body.message;
    startPolling();
  });

  // --- agreement: each annotator against the consensus and against each other (/api/v1/annotators) ----------
  function percent(share) {
    return share === null || share === undefined ? "—" : `${Math.round(share * 100)}%`;
  }
  function cell(text, className = "num") {
    const td = document.createElement("td");
    td.className = className;
    td.textContent = text;
    return td;
  }
  async function drawAgreement() {
    const box = $("agreement-table");
    if (!box) return;
    const response = await kw.requestJSON(box.dataset.url);
    if (!response.ok) {
      box.textContent = kw.errorText(response.body);
      return;
    }
    kw.agreement = response.body;
    if (!response.body.length) {
      box.textContent = "Nobody has labeled yet.";
      return;
    }
    const table = document.createElement("table");
    table.className = "compact agreement";
    table.innerHTML = `<thead><tr><th scope="col">Who</th><th scope="col" class="num">Labels</th>
      <th scope="col" class="num">With consensus: n</th><th scope="col" class="num">Exact</th><th scope="col" class="num">Weighted</th>
      <th scope="col">With each other annotator (exact · weighted · n)</th></tr></thead>`;
    const body = document.createElement("tbody");
    for (const row of response.body) {
      const tr = document.createElement("tr");
      tr.dataset.username = row.username;
      const who = document.createElement("th");
      who.scope = "row";
      who.textContent = row.username;
      const consensus = row.with_consensus;
      const others = row.with_others
        .map((pair) => `${pair.with}: ${percent(pair.exact)} · ${percent(pair.weighted)} · ${pair.n}`)
        .join("; ");
      tr.append(
        who,
        cell(String(row.labels)),
        cell(String(consensus.n)),
        cell(percent(consensus.exact)),
        cell(percent(consensus.weighted)),
        cell(others || "—", "pairs"),
      );
      body.append(tr);
    }
    table.append(body);
    box.replaceChildren(table);
  }

  // --- blind labeling: one checkbox, stored through the API (/api/v1/settings/labeling) ---------------------
  async function bindBlindNames() {
    const box = $("blind-names");
    if (!box) return;
    const current = await kw.requestJSON(box.dataset.url);
    if (!current.ok) {
      $("blind-status").textContent = kw.errorText(current.body);
      return;
    }
    box.checked = current.body.blind_names;
    box.disabled = false;
    box.addEventListener("change", async () => {
      box.disabled = true;
      const response = await kw.requestJSON(box.dataset.url, { method: "PATCH", body: { blind_names: box.checked } });
      box.disabled = false;
      if (!response.ok) {
        box.checked = !box.checked;
        $("blind-status").textContent = kw.errorText(response.body);
        return;
      }
      box.checked = response.body.blind_names;
      $("blind-status").textContent = box.checked ? "On: names are hidden from annotators." : "Off: annotators see names.";
    });
  }

  // --- second opinions: the share of tracks that wait for a second annotator (/api/v1/settings/labeling) ---
  async function bindSecondOpinions() {
    const field = $("second-opinion-share");
    if (!field) return;
    const status = $("second-opinion-status");
    const current = await kw.requestJSON(field.dataset.url);
    if (!current.ok) {
      status.textContent = kw.errorText(current.body);
      return;
    }
    field.value = Math.round(current.body.second_opinion_share * 100);
    field.disabled = false;
    field.addEventListener("change", async () => {
      const share = Number(field.value) / 100;
      field.disabled = true;
      const response = await kw.requestJSON(field.dataset.url, { method: "PATCH", body: { second_opinion_share: share } });
      field.disabled = false;
      if (!response.ok) {
        status.textContent = kw.errorText(response.body);
        return;
      }
      field.value = Math.round(response.body.second_opinion_share * 100);
      status.textContent = `Saved: ${field.value} % of tracks wait for a second annotator.`;
    });
  }

  // --- versions compared on the same held-out tracks (recorded at training; /api/v1/models) ---------------
  async function drawComparisons() {
    const cells = document.querySelectorAll("[data-comparison-for]");
    if (!cells.length) return;
    const response = await kw.requestJSON("/api/v1/models?page_size=100");
    if (!response.ok) return;
    const byId = new Map(response.body.results.map((version) => [String(version.id), version]));
    for (const cell of cells) {
      const version = byId.get(cell.dataset.comparisonFor);
      const comparison = version && version.comparison;
      if (!comparison) continue;
      const score = (value) => (value === null || value === undefined ? "—" : value.toFixed(3));
      cell.textContent = `vs ${comparison.with_version} on the same ${comparison.n} held-out tracks: ` +
        `${score(comparison.weighted)} vs ${score(comparison.other_weighted)}`;
    }
  }

  drawCharts();
  drawAgreement();
  drawComparisons();
  bindBlindNames();
  bindSecondOpinions();
  if (kw.trainingStatus) showStatus(kw.trainingStatus);
  if (kw.trainingStatus && RUNNING.has(kw.trainingStatus.status)) startPolling();
})(window.keyweb);
