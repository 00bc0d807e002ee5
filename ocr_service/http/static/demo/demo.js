// Catalyst OCR demo page (GET /demo). Plain JavaScript, no dependencies, nothing from other origins.
//
// It calls this service's API only, by URLs relative to the page (an ingress path prefix keeps
// working): /v1/languages and /v1/info for the choices, /v1/preview for page images (browsers
// cannot show TIFF or PDF, and the preview is the page exactly as the engine decoded it, so the
// boxes fit), /v1/ocr for documents of up to JOB_PAGE_THRESHOLD pages and /v1/jobs (progress
// from its server-sent events) for longer ones. With API keys configured, the key asked for is
// kept in sessionStorage only and sent as `Authorization: Bearer`.
"use strict";

(() => {
  const KEY_STORAGE = "catalyst-ocr.api-key";
  const JOB_PAGE_THRESHOLD = 2; // more pages than this go through an asynchronous job
  const JOB_WAIT_MS = 15 * 60 * 1000; // the page stops following a job after this long
  const EVENT_RECONNECTS = 5;
  const FINAL_EVENTS = new Set(["succeeded", "failed", "cancelled"]);
  const EXTENSIONS = { text: "txt", json: "json", hocr: "hocr.html", tsv: "tsv", alto: "alto.xml", pdf: "pdf" };
  const SVG = "http://www.w3.org/2000/svg";

  const base = new URL(".", location.href); // "/demo" -> "/", "/prefix/demo" -> "/prefix/"
  const $ = (id) => document.getElementById(id);

  const state = {
    file: null, // the chosen File
    pageCount: 0,
    previews: new Map(), // page number -> {bitmap, width, height}
    result: null, // the JSON result
    jobId: null, // set when the result came from a job
    request: null, // {options, viaJob} of the result shown
    pageIndex: 0,
    generation: 0, // bumped per file/run, so a stale answer never overwrites a newer one
  };

  class Problem extends Error {
    constructor(status, title, detail, type) {
      super(`${title}: ${detail}`);
      Object.assign(this, { status, title, detail, type });
    }
  }

  // -- HTTP --------------------------------------------------------------------------------------

  function apiUrl(path, params = {}) {
    const url = new URL(path, base);
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, String(value));
    return url;
  }

  function withKey(headers = {}) {
    const result = new Headers(headers);
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) result.set("Authorization", `Bearer ${key}`);
    return result;
  }

  async function call(url, init = {}) {
    const response = await fetch(url, { ...init, headers: withKey(init.headers) });
    if (!response.ok) throw await problemOf(response);
    return response;
  }

  async function problemOf(response) {
    let title = `HTTP ${response.status}`;
    let detail = response.statusText;
    let type = "";
    try {
      const body = await response.json();
      title = body.title || title;
      detail = body.detail || "";
      type = body.type || "";
    } catch {
      // not problem+json (a proxy's page): keep the status line
    }
    const problem = new Problem(response.status, title, detail, type);
    if (response.status === 401) askForKey(problem);
    return problem;
  }

  function documentBody() {
    const form = new FormData();
    form.append("file", state.file, state.file.name || "document");
    return form;
  }

  // -- messages ------------------------------------------------------------------------------------

  function showError(error) {
    const problem = error instanceof Problem ? error : new Problem(0, "The request failed", String(error.message || error), "");
    $("error-title").textContent = problem.title;
    $("error-detail").textContent = problem.detail;
    $("error").hidden = false;
    setStatus("");
  }

  function clearError() {
    $("error").hidden = true;
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // -- API key -------------------------------------------------------------------------------------

  function askForKey(problem) {
    sessionStorage.removeItem(KEY_STORAGE);
    $("key-message").textContent = problem.detail || "This service needs an API key.";
    $("key-form").hidden = false;
    $("key-input").focus();
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    clearError();
    loadChoices().then(() => state.file && recognise());
  });

  // -- choices ---------------------------------------------------------------------------------------

  async function loadChoices() {
    try {
      const languages = await (await call(apiUrl("v1/languages"))).json();
      const wanted = new Set(String(languages.default || "eng").split("+"));
      const box = $("languages");
      box.replaceChildren();
      for (const code of languages.languages) {
        const label = document.createElement("label");
        const input = document.createElement("input");
        input.type = "checkbox";
        input.name = "lang";
        input.value = code;
        input.checked = wanted.has(code);
        label.append(input, ` ${code}`);
        box.append(label);
      }
      const info = await (await call(apiUrl("v1/info"))).json();
      const defaults = info.defaults || {};
      if (defaults.psm !== undefined) $("psm").value = String(defaults.psm);
      if (defaults.preprocess) $("preprocess").value = defaults.preprocess;
      $("run").disabled = !state.file;
    } catch (error) {
      showError(error);
    }
  }

  function options() {
    const langs = [...document.querySelectorAll("#languages input:checked")].map((input) => input.value);
    const result = { psm: $("psm").value, preprocess: $("preprocess").value };
    if (langs.length) result.lang = langs.join("+");
    return result;
  }

  // -- choosing a file -------------------------------------------------------------------------------

  async function chooseFile(file) {
    if (!file) return;
    state.generation += 1;
    Object.assign(state, { file, pageCount: 0, result: null, jobId: null, request: null });
    state.previews.clear();
    $("file-name").textContent = file.name;
    $("result").hidden = true;
    $("job").hidden = true;
    $("run").disabled = false;
    clearError();
    await recognise();
  }

  $("file").addEventListener("change", (event) => chooseFile(event.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    chooseFile(event.dataTransfer.files[0]);
  });
  $("run").addEventListener("click", () => recognise());

  async function preview(number) {
    let page = state.previews.get(number);
    if (!page) {
      const response = await call(apiUrl("v1/preview", { page: number }), {
        method: "POST",
        body: state.file,
        headers: { "Content-Type": "application/octet-stream" },
      });
      state.pageCount = Number(response.headers.get("X-Page-Count")) || 1;
      // createImageBitmap needs no URL, so the CSP stays at 'self' (no blob: images).
      const bitmap = await createImageBitmap(await response.blob());
      page = { bitmap, width: Number(response.headers.get("X-Page-Width")), height: Number(response.headers.get("X-Page-Height")) };
      state.previews.set(number, page);
    }
    return page;
  }

  // -- recognition -----------------------------------------------------------------------------------

  async function recognise() {
    if (!state.file) return;
    const generation = ++state.generation;
    clearError();
    $("run").disabled = true;
    try {
      setStatus("Reading the document…");
      await preview(1); // also learns the page count
      if (generation !== state.generation) return;
      const request = { options: options(), viaJob: state.pageCount > JOB_PAGE_THRESHOLD };
      renderSnippet("curl", request);
      let result;
      let jobId = null;
      if (request.viaJob) {
        ({ result, jobId } = await runJob(request.options, generation));
      } else {
        setStatus(`Recognising ${state.pageCount === 1 ? "the page" : `${state.pageCount} pages`}…`);
        const response = await call(apiUrl("v1/ocr", { ...request.options, format: "json" }), {
          method: "POST",
          body: documentBody(),
        });
        result = await response.json();
      }
      if (generation !== state.generation) return;
      Object.assign(state, { result, jobId, request, pageIndex: 0 });
      $("result").hidden = false;
      await showPage(0);
      const seconds = (result.timings.total_ms / 1000).toFixed(2);
      setStatus(`Recognised ${result.pages.length} page(s) in ${seconds} s, mean confidence ${result.confidence.toFixed(1)}.`);
    } catch (error) {
      if (generation === state.generation) showError(error);
    } finally {
      if (generation === state.generation) $("run").disabled = false;
    }
  }

  async function runJob(opts, generation) {
    setStatus("Submitting a job…");
    const response = await call(apiUrl("v1/jobs", { ...opts, format: "json" }), { method: "POST", body: documentBody() });
    const job = await response.json();
    $("job").hidden = false;
    showProgress("queued", job);
    const final = await followJob(job.id, generation);
    if (final !== "succeeded") {
      const current = await (await call(apiUrl(`v1/jobs/${job.id}`))).json();
      const error = current.error || {};
      throw new Problem(error.status || 0, error.title || `The job ${final}`, error.detail || `Job ${job.id} ${final}.`, error.type || "");
    }
    const result = await (await call(apiUrl(`v1/jobs/${job.id}/result`, { format: "json" }))).json();
    return { result, jobId: job.id };
  }

  function showProgress(event, data) {
    const total = data.pages_total || 0;
    const done = data.pages_done || 0;
    const bar = $("job-progress");
    bar.max = Math.max(total, 1);
    bar.value = done;
    $("job-status").textContent = `${event}: ${done} of ${total} pages`;
    setStatus(`Job ${event}…`);
  }

  // Follows GET /v1/jobs/{id}/events with fetch (EventSource cannot send the API key), resuming with
  // Last-Event-ID when the stream breaks; answers the final event's name.
  async function followJob(id, generation) {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), JOB_WAIT_MS);
    let lastId = null;
    try {
      for (let attempt = 0; attempt <= EVENT_RECONNECTS; attempt += 1) {
        const headers = { Accept: "text/event-stream" };
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const response = await call(apiUrl(`v1/jobs/${id}/events`), { headers, signal: abort.signal });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer = (buffer + value).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            const event = parseEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (event.id !== null) lastId = event.id;
            if (!event.data) continue;
            if (generation === state.generation) showProgress(event.name, JSON.parse(event.data));
            if (FINAL_EVENTS.has(event.name)) {
              await reader.cancel();
              return event.name;
            }
          }
        }
      }
      const job = await (await call(apiUrl(`v1/jobs/${id}`))).json(); // the stream kept breaking: ask
      return job.status;
    } finally {
      clearTimeout(timer);
    }
  }

  function parseEvent(chunk) {
    const event = { id: null, name: "message", data: "" };
    for (const line of chunk.split("\n")) {
      const colon = line.indexOf(":");
      if (colon === 0) continue; // a comment (keep-alive)
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") event.id = value;
      else if (field === "event") event.name = value;
      else if (field === "data") event.data += (event.data ? "\n" : "") + value;
    }
    return event;
  }

  // -- showing a page ----------------------------------------------------------------------------------

  function colour(confidence) {
    const hue = Math.max(0, Math.min(100, confidence)) * 1.2; // 0 red .. 120 green
    return `hsl(${hue.toFixed(0)} 85% ${hue > 90 ? 32 : 42}%)`;
  }

  function mean(values) {
    return values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0;
  }

  function addBox(svg, level, item, confidence) {
    const [x, y, width, height] = item.bbox;
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("class", level);
    rect.setAttribute("x", x);
    rect.setAttribute("y", y);
    rect.setAttribute("width", width);
    rect.setAttribute("height", height);
    if (level !== "block") rect.setAttribute("stroke", colour(confidence));
    rect.dataset.level = level;
    rect.dataset.text = item.text;
    rect.dataset.confidence = confidence.toFixed(1);
    const title = document.createElementNS(SVG, "title");
    title.textContent = `${level} “${item.text}”: confidence ${confidence.toFixed(1)}`;
    rect.append(title);
    svg.append(rect);
  }

  async function showPage(index) {
    const { result } = state;
    const page = result.pages[index];
    const image = await preview(page.number); // first, so the page changes all at once
    if (result !== state.result) return; // another document was chosen meanwhile
    state.pageIndex = index;
    $("page-label").textContent = `Page ${page.number} (${index + 1} of ${result.pages.length})`;
    $("prev").disabled = index === 0;
    $("next").disabled = index === result.pages.length - 1;
    $("text").textContent = page.text;
    $("page-confidence").textContent = `confidence ${page.confidence.toFixed(1)}`;

    const canvas = $("page-image");
    canvas.width = image.bitmap.width;
    canvas.height = image.bitmap.height;
    canvas.getContext("2d").drawImage(image.bitmap, 0, 0);
    $("stage").style.setProperty("--ratio", String(image.bitmap.width / image.bitmap.height)); // CSSOM: CSP allows it

    const svg = $("boxes");
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${page.width} ${page.height}`);
    const words = [];
    for (const block of page.blocks) {
      const lines = block.lines || [];
      addBox(svg, "block", block, mean(lines.map((line) => line.confidence)));
      for (const line of lines) {
        addBox(svg, "line", line, line.confidence);
        words.push(...line.words);
      }
    }
    for (const word of words) addBox(svg, "word", word, word.confidence); // on top: hovered first
    svg.dataset.words = String(words.length);
    renderReport(page);
  }

  $("prev").addEventListener("click", () => showPage(state.pageIndex - 1).catch(showError));
  $("next").addEventListener("click", () => showPage(state.pageIndex + 1).catch(showError));
  for (const input of document.querySelectorAll("#pager input[data-level]")) {
    input.addEventListener("change", () => $("boxes").classList.toggle(`hide-${input.dataset.level}`, !input.checked));
  }
  $("boxes").addEventListener("mouseover", (event) => {
    const rect = event.target.closest("rect");
    if (!rect) return;
    const { level, text, confidence } = rect.dataset;
    $("hover-info").textContent = `${level} “${text.replace(/\s+/g, " ")}”: confidence ${confidence}`;
  });

  function cell(row, text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.append(td);
  }

  function renderReport(page) {
    const report = page.preprocessing || {};
    $("preprocess-mode").textContent = `mode: ${report.mode || "none"}`;
    const steps = $("steps").tBodies[0];
    steps.replaceChildren();
    for (const step of report.steps || []) {
      const row = steps.insertRow();
      cell(row, step.name);
      cell(row, step.applied ? "yes" : "no", step.applied ? "yes" : "");
      cell(row, step.decision || "");
      cell(row, step.reason || "");
      cell(row, step.ms === undefined ? "" : Number(step.ms).toFixed(1));
    }
    const timings = $("timings").tBodies[0];
    timings.replaceChildren();
    const ms = (value) => (value === undefined ? "" : `${Number(value).toFixed(1)} ms`);
    const t = page.timings || {};
    const pageRow = timings.insertRow();
    cell(pageRow, `page ${page.number}`);
    [t.decode_ms, t.preprocess_ms, t.recognize_ms, undefined].forEach((value) => cell(pageRow, ms(value)));
    const d = state.result.timings || {};
    const docRow = timings.insertRow();
    cell(docRow, "document");
    [d.decode_ms, d.preprocess_ms, d.recognize_ms, d.total_ms].forEach((value) => cell(docRow, ms(value)));
  }

  // -- downloads ---------------------------------------------------------------------------------------

  for (const button of document.querySelectorAll("#downloads button")) {
    button.addEventListener("click", () => download(button.dataset.format).catch(showError));
  }

  async function download(format) {
    if (!state.request) return;
    clearError();
    setStatus(`Preparing ${format}…`);
    const response = state.jobId
      ? await call(apiUrl(`v1/jobs/${state.jobId}/result`, { format })) // stored: no second recognition
      : await call(apiUrl("v1/ocr", { ...state.request.options, format }), { method: "POST", body: documentBody() });
    const blob = await response.blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${(state.file.name || "document").replace(/\.[^.]*$/, "")}.${EXTENSIONS[format]}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
    setStatus(`Downloaded ${link.download}.`);
  }

  // -- copy as curl / Python ---------------------------------------------------------------------------

  function shellQuote(text) {
    return `'${String(text).replace(/'/g, "'\\''")}'`;
  }

  function snippet(kind, request) {
    const name = state.file.name || "document";
    const keyed = Boolean(sessionStorage.getItem(KEY_STORAGE));
    const endpoint = request.viaJob ? "v1/jobs" : "v1/ocr";
    if (kind === "curl") {
      const url = apiUrl(endpoint, { ...request.options, format: "json" }).href;
      const auth = keyed ? ' -H "Authorization: Bearer $CATALYST_OCR_API_KEY"' : "";
      const note = request.viaJob ? "\n# 202 Accepted: follow the job at its Location (see docs/jobs.md)" : "";
      return `curl${auth} -F file=@${shellQuote(name)} ${shellQuote(url)}${note}`;
    }
    const args = [JSON.stringify(name)];
    for (const [option, value] of Object.entries(request.options)) {
      args.push(option === "psm" ? `psm=${Number(value)}` : `${option}=${JSON.stringify(value)}`);
    }
    const lines = ["from catalyst_ocr.client import Client", ""];
    if (keyed) lines.push("# The API key comes from CATALYST_OCR_API_KEY in the environment.");
    lines.push(`with Client(${JSON.stringify(base.href.replace(/\/$/, ""))}) as client:`);
    if (request.viaJob) {
      lines.push(
        `    job = client.submit(${args.join(", ")})`,
        `    job.wait(timeout=${JOB_WAIT_MS / 1000})`,
        "    result = job.result()",
      );
    } else {
      lines.push(`    result = client.ocr(${args.join(", ")})`);
    }
    lines.push("    print(result.text)");
    return lines.join("\n");
  }

  function renderSnippet(kind, request) {
    $("snippet").value = snippet(kind, request);
    $("snippet").dataset.kind = kind;
  }

  async function copy(kind) {
    if (!state.request) return;
    renderSnippet(kind, state.request);
    const text = $("snippet").value;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      $("snippet").select(); // no clipboard API (plain http on another host): the legacy way
      document.execCommand("copy");
    }
    $("copy-status").textContent = `Copied as ${kind === "curl" ? "curl" : "Python"}.`;
  }

  $("copy-curl").addEventListener("click", () => copy("curl"));
  $("copy-python").addEventListener("click", () => copy("python"));

  loadChoices();
})();
