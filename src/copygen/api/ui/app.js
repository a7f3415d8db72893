// The playground: a brief form over copygen's own API (same origin, no third parties).
const $ = (id) => document.getElementById(id);
const form = $("brief");
const state = { channels: new Map(), result: null };

function apiKey() {
  return sessionStorage.getItem("copygen-api-key") || "";
}

function headers() {
  const h = { "content-type": "application/json", accept: "text/event-stream" };
  const key = apiKey();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

async function getJSON(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) throw await problem(response);
  return response.json();
}

function option(value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  return o;
}

async function loadCatalog() {
  const [channels, tones, frameworks] = await Promise.all([
    getJSON("/v1/channels"), getJSON("/v1/tones"), getJSON("/v1/frameworks"),
  ]);
  for (const c of channels.channels) {
    state.channels.set(c.id, c);
    $("channel").append(option(c.id, c.name));
  }
  for (const t of tones.tones) $("tones").append(option(t.id, t.description));
  for (const f of frameworks.frameworks) $("framework").append(option(f.id, f.name));
  showRule();
}

const COUNTING = {
  chars: "characters",
  google_ads: "characters, wide ones count 2",
  x_weighted: "weighted: wide characters and emoji 2, links 23",
  sms: "GSM-7 characters (160 per segment; 70 once any other character appears)",
  words: "words",
};

const UNITS = {
  chars: "characters",
  google_ads: "characters (wide ones count 2)",
  x_weighted: "weighted characters",
  words: "words",
};

function unitOf(channel, variant) {
  if (!channel) return "";
  if (channel.counting === "sms") {
    // The server counts in the message's encoding; its limit says which one it is.
    return variant.limit !== null && variant.limit <= 70
      ? "UCS-2 units (not all GSM-7: 70 per segment)"
      : "GSM-7 characters";
  }
  return UNITS[channel.counting] || channel.counting;
}

function showRule() {
  const c = state.channels.get($("channel").value);
  if (!c) return;
  const limit = c.limit ? `up to ${c.limit} (${c.limit_kind})` : "no limit";
  $("channel-rule").textContent = `${limit}, counted in ${COUNTING[c.counting] || c.counting}`;
}

function list(value, separator) {
  return value.split(separator).map((s) => s.trim()).filter(Boolean);
}

function brief() {
  const body = {
    product: $("product").value.trim(),
    description: $("description").value.trim(),
    audience: $("audience").value.trim(),
    tone: $("tone").value.trim() || "friendly",
    channel: $("channel").value,
    keywords: list($("keywords").value, ","),
    banned_words: list($("banned_words").value, ","),
    facts: list($("facts").value, "\n"),
    variants: Number($("variants").value) || 3,
    stream: true,
  };
  if ($("framework").value) body.framework = $("framework").value;
  return body;
}

function clearErrors() {
  for (const el of document.querySelectorAll(".error")) el.textContent = "";
}

async function problem(response) {
  let error = { type: "http_error", message: `HTTP ${response.status}`, field: null };
  try {
    error = (await response.json()).error || error;
  } catch {}
  const retry = response.headers.get("retry-after");
  if (retry) error.message += ` Retry in ${retry} s.`;
  error.status = response.status;
  return error;
}

function showError(error) {
  const field = (error.field || "").split(".")[0];
  const target = (field && $(`${field}-error`)) || $("form-error");
  target.textContent = error.message;
  $("status").textContent = "Not generated: " + error.message;
}

async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield [name, data.join("\n")];
    }
  }
}

async function generate(event) {
  event.preventDefault();
  clearErrors();
  sessionStorage.setItem("copygen-api-key", $("api-key").value.trim());
  $("generate").disabled = true;
  $("draft").textContent = "";
  $("variants-list").replaceChildren();
  $("status").textContent = "Writing…";
  const drafts = new Map();
  try {
    const response = await fetch("/v1/copy", {
      method: "POST", headers: headers(), body: JSON.stringify(brief()),
    });
    if (!response.ok) throw await problem(response);
    for await (const [name, data] of events(response)) {
      if (data === "[DONE]") break;
      const payload = JSON.parse(data);
      if (name === "draft") {
        const key = `${payload.round}-${payload.row}`;
        drafts.set(key, (drafts.get(key) || "") + payload.delta);
        $("draft").textContent = [...drafts.values()].join("\n");
      } else if (name === "result") {
        show(payload);
      } else if (name === "error") {
        throw payload.error;
      }
    }
  } catch (error) {
    showError(error.message ? error : { message: String(error) });
  } finally {
    $("generate").disabled = false;
  }
}

function span(text, className) {
  const s = document.createElement("span");
  s.textContent = text;
  if (className) s.className = className;
  return s;
}

function show(result) {
  state.result = result;
  $("draft").textContent = "";
  const channel = state.channels.get(result.channel);
  const items = result.variants.map((v, index) => {
    const li = document.createElement("li");
    const text = document.createElement("p");
    text.className = "copy";
    text.textContent = v.text;
    const meta = document.createElement("p");
    meta.className = "meta";
    const limit = v.limit === null ? "" : ` / ${v.limit}`;
    meta.append(span(`${v.chars}${limit} ${unitOf(channel, v)}`, v.fits ? "fits" : "over"));
    if (v.keywords_missing.length) meta.append(span(`missing: ${v.keywords_missing.join(", ")}`, "flag"));
    for (const flag of v.checks.flags) meta.append(span(`${flag.type.replace("_", " ")}: ${flag.text}`, "flag"));
    if (v.checks.readability) meta.append(span(`reading ease ${v.checks.readability.ease}`));
    if (v.checks.cta !== null) meta.append(span(v.checks.cta ? "call to action" : "no call to action"));
    meta.append(span(`score ${v.score}`));
    const actions = document.createElement("div");
    actions.className = "variant-actions";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "quiet";
    copy.textContent = "Copy";
    copy.setAttribute("aria-label", `Copy variant: ${v.text.slice(0, 40)}`);
    copy.addEventListener("click", () => navigator.clipboard.writeText(v.text));
    const good = rateButton("Good", `Rate variant ${index + 1} good`);
    const poor = rateButton("Poor", `Rate variant ${index + 1} poor`);
    good.addEventListener("click", () => rate(result.id, index, "up", good, poor));
    poor.addEventListener("click", () => rate(result.id, index, "down", poor, good));
    actions.append(copy, good, poor);
    li.append(text, meta, actions);
    return li;
  });
  $("variants-list").replaceChildren(...items);
  const complete = result.complete ? "" : ` (${result.delivered} of ${result.requested} passed every check)`;
  $("status").textContent = `${result.delivered} variant(s) in ${Math.round(result.timings_ms.total)} ms${complete}.`;
  $("export").disabled = result.variants.length === 0;
}

function rateButton(label, aria) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "quiet";
  button.textContent = label;
  button.setAttribute("aria-label", aria);
  button.setAttribute("aria-pressed", "false");
  return button;
}

// Feedback on one variant (POST /v1/feedback): it can teach a stored brand its voice.
async function rate(copyId, index, rating, chosen, other) {
  chosen.disabled = other.disabled = true;
  try {
    const response = await fetch("/v1/feedback", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ copy_id: copyId, variant: index, rating }),
    });
    if (!response.ok) throw await problem(response);
    chosen.setAttribute("aria-pressed", "true");
    $("status").textContent = `Thanks: variant ${index + 1} rated ${rating === "up" ? "good" : "poor"}.`;
  } catch (error) {
    chosen.disabled = other.disabled = false;
    $("status").textContent = "Rating not saved: " + error.message;
  }
}

function cell(value) {
  let text = String(value ?? "");
  if (/^[=+\-@\t\r]/.test(text)) text = "'" + text; // no formulas in spreadsheet apps (as api/exports.py)
  return /[",\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportCsv() {
  if (!state.result) return;
  const rows = [["text", "chars", "limit", "fits", "score"]];
  for (const v of state.result.variants) rows.push([v.text, v.chars, v.limit, v.fits, v.score]);
  const csv = "\ufeff" + rows.map((r) => r.map(cell).join(",")).join("\r\n") + "\r\n";
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  link.download = `copygen-${state.result.channel}.csv`;
  link.click();
  URL.revokeObjectURL(link.href);
}

$("api-key").value = apiKey();
$("api-key").addEventListener("change", () => {
  sessionStorage.setItem("copygen-api-key", $("api-key").value.trim());
  if (!state.channels.size) {
    $("form-error").textContent = "";
    loadCatalog().catch(showError);
  }
});
$("channel").addEventListener("change", showRule);
form.addEventListener("submit", generate);
$("export").addEventListener("click", exportCsv);
loadCatalog().catch(showError);
