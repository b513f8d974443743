// The public map portal: MapLibre over the service's own vector and raster tiles.
// Nothing is fetched from outside unless a basemap URL is configured.
import * as maplibregl from "maplibre-gl";
import { initialLanguage, language, setLanguage, t } from "./i18n.js";
import { Drawing } from "./draw.js";

/* global __WORKER_FILE__ */
maplibregl.setWorkerUrl(new URL(`./${__WORKER_FILE__}`, import.meta.url).href);

const config = JSON.parse(document.getElementById("portal-config")?.textContent || "{}");
const ORIGIN = window.location.origin;
const PAKISTAN = [60.8, 23.6, 77.9, 37.1];
const LIST_SIZE = 50;
const DOWNLOAD_MAX = 10000;

const STATUS_COLOURS = {
  applied: "#e69f00",
  granted: "#0072b2",
  expired: "#8c8c8c",
  refused: "#cc79a7",
  surrendered: "#56b4e9",
  cancelled: "#7f3c8d",
};
const PALETTE = ["#8c510a", "#01665e", "#762a83", "#b35806", "#1b7837", "#c51b7d", "#4d4d4d"];
const $ = (id) => document.getElementById(id);
const TOKEN = "cadastre.portal.token";
const session = { user: null };

// ------------------------------------------------------------------ talking to the service


class ApiError extends Error {}

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const token = sessionStorage.getItem(TOKEN);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  if (!headers.has("Accept")) headers.set("Accept", "application/json");
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail ?? body);
    } catch {
      /* not JSON */
    }
    throw new ApiError(detail);
  }
  return response.status === 204 ? null : response.json();
}

function say(text, isError = false) {
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function fail(error) {
  say(t("error", { detail: error.message }), true);
  console.error(error);
}

const fmt = (x, digits = 2) =>
  Number(x).toLocaleString(language() === "ur" ? "ur-PK" : language(), {
    maximumFractionDigits: digits,
  });

// ------------------------------------------------------------------------------ the map

function baseStyle() {
  const sources = {};
  const layers = [{ id: "background", type: "background", paint: { "background-color": "#dde6ea" } }];
  if (config.basemap?.url) {
    sources.basemap = {
      type: "raster",
      tiles: [config.basemap.url],
      tileSize: 256,
      attribution: config.basemap.attribution || "",
    };
    layers.push({ id: "basemap", type: "raster", source: "basemap" });
  }
  return { version: 8, sources, layers };
}

const map = new maplibregl.Map({
  container: "map",
  style: baseStyle(),
  bounds: PAKISTAN,
  fitBoundsOptions: { padding: 10 },
  maxBounds: [
    [40, 5],
    [100, 50],
  ],
  attributionControl: { compact: true },
  // Tiles of the service carry the sign-in too: an officer's map shows the applications
  // held back from the public, a geologist's the restricted survey layers.
  transformRequest: (url) => {
    const token = sessionStorage.getItem(TOKEN);
    return token && url.startsWith(ORIGIN) ? { url, headers: { Authorization: `Bearer ${token}` } } : { url };
  },
  cooperativeGestures: false,
});
map.addControl(new maplibregl.NavigationControl({ showCompass: false }), "top-left");
map.addControl(new maplibregl.ScaleControl(), "bottom-left");
const drawing = new Drawing(map, $("drawbar"));

// What the end-to-end tests and a curious person at the console can reach.
window.portal = { map, ready: false, session };

const tiles = (collection, query = "") =>
  `${ORIGIN}/tiles/${collection}/{z}/{x}/{y}.mvt${query ? `?${query}` : ""}`;

const empty = { type: "FeatureCollection", features: [] };

// Layers of the switcher: key -> style layer ids.
const switchable = new Map();

function addVector(id, collection, styleLayers, visible = true) {
  map.addSource(id, { type: "vector", tiles: [tiles(collection)], maxzoom: 14 });
  for (const layer of styleLayers) {
    map.addLayer({
      ...layer,
      source: id,
      layout: { ...(layer.layout || {}), visibility: visible ? "visible" : "none" },
    });
  }
  switchable.set(
    id,
    styleLayers.map((l) => l.id),
  );
}

function statusColour() {
  const cases = Object.entries(STATUS_COLOURS).flat();
  return ["match", ["get", "status"], ...cases, "#444444"];
}

function addBaseLayers(districts) {
  addVector("provinces", "jurisdictions", [
    {
      id: "provinces-fill",
      type: "fill",
      "source-layer": "jurisdictions",
      paint: { "fill-color": "#f6f3ea", "fill-opacity": config.basemap ? 0.3 : 1 },
    },
    {
      id: "provinces-line",
      type: "line",
      "source-layer": "jurisdictions",
      paint: { "line-color": "#5b5b5b", "line-width": 1.4 },
    },
  ]);
  if (districts) {
    addVector("districts", districts, [
      {
        id: "districts-line",
        type: "line",
        "source-layer": districts,
        minzoom: 5,
        paint: { "line-color": "#8a8a8a", "line-width": 0.6, "line-dasharray": [3, 2] },
      },
    ]);
  }
}

function addRegisterLayers() {
  addVector("reserved", "reserved_areas", [
    {
      id: "reserved-fill",
      type: "fill",
      "source-layer": "reserved_areas",
      paint: { "fill-color": "#b2182b", "fill-opacity": 0.18 },
    },
    {
      id: "reserved-line",
      type: "line",
      "source-layer": "reserved_areas",
      paint: { "line-color": "#b2182b", "line-width": 1.2, "line-dasharray": [2, 1] },
    },
  ]);
  addVector("licences", "licences", [
    {
      id: "licence-density",
      type: "fill",
      "source-layer": "licence_density",
      maxzoom: 9,
      paint: {
        "fill-color": "#0b3d91",
        "fill-opacity": ["interpolate", ["linear"], ["get", "n"], 1, 0.25, 10, 0.6, 50, 0.85],
      },
    },
    {
      id: "licences-fill",
      type: "fill",
      "source-layer": "licences",
      paint: { "fill-color": statusColour(), "fill-opacity": 0.55 },
    },
    {
      id: "licences-line",
      type: "line",
      "source-layer": "licences",
      paint: { "line-color": statusColour(), "line-width": 1 },
    },
  ]);
}

function addWorkLayers() {
  const geo = (id) => map.addSource(id, { type: "geojson", data: empty });
  for (const id of ["aoi", "free", "conflicts", "selected"]) geo(id);
  map.addLayer({
    id: "free-fill",
    type: "fill",
    source: "free",
    paint: { "fill-color": "#1a9850", "fill-opacity": 0.45 },
  });
  map.addLayer({
    id: "free-line",
    type: "line",
    source: "free",
    paint: { "line-color": "#1a9850", "line-width": 1.5 },
  });
  map.addLayer({
    id: "aoi-line",
    type: "line",
    source: "aoi",
    paint: { "line-color": "#111111", "line-width": 2.5, "line-dasharray": [2, 1] },
  });
  map.addLayer({
    id: "conflicts-fill",
    type: "fill",
    source: "conflicts",
    paint: { "fill-color": "#e31a1c", "fill-opacity": 0.6 },
  });
  map.addLayer({
    id: "conflicts-line",
    type: "line",
    source: "conflicts",
    paint: { "line-color": "#a50f15", "line-width": 2 },
  });
  map.addLayer({
    id: "selected-line",
    type: "line",
    source: "selected",
    paint: { "line-color": "#ffd700", "line-width": 4 },
  });
  drawing.addLayers();
}

// Survey layers go below the register; their colours come from a fixed palette.
function addSurveyLayer(layer, index) {
  const colour = PALETTE[index % PALETTE.length];
  const sourceLayer = layer.slug;
  const before = "reserved-fill";
  const kind = layer.geometry_type || "";
  const id = `survey:${layer.slug}`;
  map.addSource(id, { type: "vector", tiles: [tiles(layer.slug)], maxzoom: 14 });
  const ids = [];
  const add = (spec) => {
    map.addLayer(
      { ...spec, source: id, "source-layer": sourceLayer, layout: { visibility: "none" } },
      before,
    );
    ids.push(spec.id);
  };
  if (kind.includes("Point")) {
    add({
      id: `${id}:circle`,
      type: "circle",
      paint: {
        "circle-color": colour,
        "circle-radius": 4,
        "circle-stroke-color": "#ffffff",
        "circle-stroke-width": 1,
      },
    });
  } else if (kind.includes("Line")) {
    add({ id: `${id}:line`, type: "line", paint: { "line-color": colour, "line-width": 1.5 } });
  } else {
    add({ id: `${id}:fill`, type: "fill", paint: { "fill-color": colour, "fill-opacity": 0.3 } });
    add({ id: `${id}:line`, type: "line", paint: { "line-color": colour, "line-width": 0.8 } });
  }
  switchable.set(id, ids);
  return colour;
}

const rasterState = new Map(); // slug -> {colormap, range}

function rasterTiles(slug) {
  const { colormap } = rasterState.get(slug);
  return `${ORIGIN}/rasters/${slug}/tiles/{z}/{x}/{y}.png?colormap=${encodeURIComponent(colormap)}`;
}

function addRaster(entry) {
  const stats = entry.raster?.statistics?.[0];
  rasterState.set(entry.slug, {
    colormap: "viridis",
    range: stats ? [stats.percentiles["2"], stats.percentiles["98"]] : null,
    units: entry.raster?.units || "",
    name: entry.name,
  });
  const id = `raster:${entry.slug}`;
  map.addSource(id, {
    type: "raster",
    tiles: [rasterTiles(entry.slug)],
    tileSize: 256,
    bounds: entry.bbox,
  });
  map.addLayer(
    { id, type: "raster", source: id, layout: { visibility: "none" }, paint: { "raster-opacity": 0.8 } },
    "provinces-line", // above the land, below the boundaries
  );
  switchable.set(id, [id]);
}

function setVisible(key, on) {
  for (const id of switchable.get(key) || []) {
    map.setLayoutProperty(id, "visibility", on ? "visible" : "none");
  }
  renderLegend();
}

const isVisible = (key) =>
  (switchable.get(key) || []).some((id) => map.getLayoutProperty(id, "visibility") !== "none");

// ------------------------------------------------------------------------- layer switcher

const catalogue = { survey: [], rasters: [], colormaps: [] };

function checkbox(key, label, checked, extra = "") {
  const id = `layer-${key.replace(/[^a-z0-9]/gi, "-")}`;
  const row = document.createElement("div");
  row.className = "layer-row";
  row.innerHTML = `<input type="checkbox" id="${id}"><label for="${id}"></label>${extra}`;
  const input = row.querySelector("input");
  input.checked = checked;
  input.dataset.layer = key;
  row.querySelector("label").textContent = label;
  input.addEventListener("change", () => setVisible(key, input.checked));
  return row;
}

function heading(key) {
  const h = document.createElement("div");
  h.className = "layer-group";
  h.dataset.i18n = key;
  h.textContent = t(key);
  return h;
}

function renderLayerList() {
  const box = $("layer-list");
  box.replaceChildren();
  const visible = (k) => (switchable.has(k) ? isVisible(k) : false);
  if (config.basemap?.url) box.append(checkbox("basemap", t("layers.basemap"), true));
  box.append(checkbox("provinces", t("layers.provinces"), visible("provinces")));
  if (switchable.has("districts"))
    box.append(checkbox("districts", t("layers.districts"), visible("districts")));
  box.append(checkbox("licences", t("layers.licences"), visible("licences")));
  box.append(checkbox("reserved", t("layers.reserved"), visible("reserved")));
  if (catalogue.survey.length) box.append(heading("layers.survey"));
  for (const layer of catalogue.survey) {
    const key = `survey:${layer.slug}`;
    const name = layer.synthetic ? `${layer.name} (${t("layers.synthetic")})` : layer.name;
    box.append(checkbox(key, name, visible(key)));
  }
  if (catalogue.rasters.length) box.append(heading("layers.rasters"));
  for (const entry of catalogue.rasters) {
    const key = `raster:${entry.slug}`;
    const row = checkbox(key, entry.name, visible(key));
    const select = document.createElement("select");
    select.setAttribute("aria-label", `${t("layers.colormap")}: ${entry.name}`);
    for (const name of catalogue.colormaps) select.add(new Option(name, name));
    select.value = rasterState.get(entry.slug).colormap;
    select.addEventListener("change", () => {
      rasterState.get(entry.slug).colormap = select.value;
      map.getSource(key).setTiles([rasterTiles(entry.slug)]);
      renderLegend();
    });
    row.append(select);
    box.append(row);
  }
  if (config.basemap?.url) {
    switchable.set("basemap", ["basemap"]);
  }
}

// --------------------------------------------------------------------------------- legend

const colourBars = new Map(); // colormap name -> CSS gradient

async function gradient(name) {
  if (!colourBars.has(name)) {
    const { colors } = await api(`/rasters/colormaps/${encodeURIComponent(name)}`);
    const stops = colors
      .filter((_, i) => i % 32 === 0 || i === colors.length - 1)
      .map(([r, g, b], i, all) => `rgb(${r},${g},${b}) ${((i / (all.length - 1)) * 100).toFixed(0)}%`);
    colourBars.set(name, `linear-gradient(to right, ${stops.join(", ")})`);
  }
  return colourBars.get(name);
}

function swatch(colour, label, kind = "fill") {
  const li = document.createElement("li");
  const sw = document.createElement("span");
  sw.className = `swatch ${kind}`;
  sw.style.setProperty("--c", colour);
  const text = document.createElement("span");
  text.textContent = label;
  li.append(sw, text);
  return li;
}

function renderLegend() {
  const list = $("legend-list");
  list.replaceChildren();
  if (isVisible("licences")) {
    for (const [status, colour] of Object.entries(STATUS_COLOURS)) {
      const li = swatch(colour, t(`status.${status}`));
      li.dataset.status = status;
      list.append(li);
    }
    list.append(swatch("#0b3d91", t("legend.density")));
  }
  if (isVisible("reserved")) list.append(swatch("#b2182b", t("legend.reserved"), "hatch"));
  list.append(swatch("#111111", t("legend.aoi"), "outline"));
  list.append(swatch("#1a9850", t("legend.free")));
  list.append(swatch("#e31a1c", t("legend.conflict")));
  catalogue.survey.forEach((layer) => {
    const key = `survey:${layer.slug}`;
    if (isVisible(key)) list.append(swatch(layer.colour, layer.name, layer.geometry_type?.includes("Point") ? "dot" : "fill"));
  });
  for (const entry of catalogue.rasters) {
    if (!isVisible(`raster:${entry.slug}`)) continue;
    const state = rasterState.get(entry.slug);
    const li = document.createElement("li");
    li.className = "ramp";
    const name = document.createElement("div");
    name.textContent = `${state.name} (${state.colormap})`;
    const bar = document.createElement("div");
    bar.className = "bar";
    const ends = document.createElement("div");
    ends.className = "ends";
    if (state.range) {
      ends.innerHTML = "<span></span><span></span>";
      ends.children[0].textContent = `${fmt(state.range[0], 1)} ${state.units}`;
      ends.children[1].textContent = `${fmt(state.range[1], 1)} ${state.units}`;
    }
    li.append(name, bar, ends);
    list.append(li);
    gradient(state.colormap).then((g) => {
      bar.style.background = g;
    }, fail);
  }
}

// -------------------------------------------------------------------------------- filters

const filters = { province: "", status: [], type: "", mineral: "", datefield: "applied_on", from: "", to: "" };

const cqlText = (value) => `'${String(value).replaceAll("'", "''")}'`;

function filterQuery() {
  const q = new URLSearchParams();
  if (filters.province) q.set("province", filters.province);
  if (filters.status.length) q.set("status", filters.status.join(","));
  if (filters.type) q.set("type", filters.type);
  if (filters.mineral) q.set("mineral", filters.mineral);
  const cql = [];
  if (filters.from) cql.push(`${filters.datefield} >= DATE(${cqlText(filters.from)})`);
  if (filters.to) cql.push(`${filters.datefield} <= DATE(${cqlText(filters.to)})`);
  if (cql.length) q.set("filter", cql.join(" AND "));
  return q;
}

function readFilters() {
  const form = $("filter-form");
  const data = new FormData(form);
  filters.province = data.get("province") || "";
  filters.type = data.get("type") || "";
  filters.mineral = (data.get("mineral") || "").trim();
  filters.datefield = data.get("datefield") || "applied_on";
  filters.from = data.get("from") || "";
  filters.to = data.get("to") || "";
  filters.status = data.getAll("status");
}

function applyFilters() {
  readFilters();
  map.getSource("licences").setTiles([tiles("licences", filterQuery().toString())]);
  refreshList();
}

function fillFilterForm(provinces, types) {
  const form = $("filter-form");
  for (const p of provinces) form.province.add(new Option(p.name, p.code));
  for (const type of types) {
    if (type.province) continue;
    form.type.add(new Option(type.name, type.key));
    $("candidate-form").licence_type.add(new Option(type.name, type.key));
  }
  const box = $("status-boxes");
  for (const status of Object.keys(STATUS_COLOURS)) {
    const label = document.createElement("label");
    label.className = "check";
    label.innerHTML = `<input type="checkbox" name="status"> <span></span>`;
    label.querySelector("input").value = status;
    const span = label.querySelector("span");
    span.dataset.i18n = `status.${status}`;
    span.textContent = t(`status.${status}`);
    box.append(label);
  }
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    applyFilters();
  });
  form.addEventListener("reset", () => setTimeout(applyFilters));
}

// ------------------------------------------------------------------ the list and downloads

function viewBox() {
  const b = map.getBounds();
  const box = [
    Math.max(b.getWest(), PAKISTAN[0]),
    Math.max(b.getSouth(), PAKISTAN[1]),
    Math.min(b.getEast(), PAKISTAN[2]),
    Math.min(b.getNorth(), PAKISTAN[3]),
  ];
  return box.map((v) => v.toFixed(5)).join(",");
}

function itemsUrl(limit) {
  const q = filterQuery();
  q.set("bbox", viewBox());
  q.set("limit", String(limit));
  return `/collections/licences/items?${q}`;
}

let listTicket = 0;
let lastList = null;

async function refreshList() {
  const ticket = ++listTicket;
  try {
    const data = await api(itemsUrl(LIST_SIZE), { headers: { Accept: "application/geo+json" } });
    if (ticket !== listTicket) return;
    lastList = data;
    renderList();
  } catch (error) {
    fail(error);
  }
}

function licenceRow(id, p) {
  const li = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "row";
  button.dataset.licence = id;
  const dot = document.createElement("span");
  dot.className = "swatch dot";
  dot.style.setProperty("--c", STATUS_COLOURS[p.status] || "#444");
  const no = document.createElement("strong");
  no.textContent = p.licence_no;
  const rest = document.createElement("span");
  const minerals = Array.isArray(p.minerals) ? p.minerals.join(", ") : p.minerals;
  rest.textContent = ` ${p.holder} · ${minerals} · ${t(`status.${p.status}`)}`;
  button.append(dot, no, rest);
  button.addEventListener("click", () => selectLicence(id, { fly: true }));
  li.append(button);
  return li;
}

function renderList() {
  if (!lastList) return;
  const rows = $("list-rows");
  rows.replaceChildren(...lastList.features.map((f) => licenceRow(f.id, f.properties)));
  const n = lastList.numberMatched ?? lastList.features.length;
  let text = n ? t("list.count", { n: fmt(n, 0) }) : t("list.empty");
  if (n > lastList.features.length) text += `; ${t("list.showing", { n: lastList.features.length })}`;
  $("list-count").textContent = text;
}

async function shownFeatures() {
  let url = itemsUrl(DOWNLOAD_MAX);
  const features = [];
  while (url && features.length < 100000) {
    const page = await api(url, { headers: { Accept: "application/geo+json" } });
    features.push(...page.features);
    url = page.links?.find((l) => l.rel === "next")?.href;
  }
  return { type: "FeatureCollection", features };
}

function save(name, type, text) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = name;
  document.body.append(a);
  a.click();
  setTimeout(() => {
    URL.revokeObjectURL(a.href);
    a.remove();
  }, 1000);
}

const CSV_FIELDS = [
  "licence_no",
  "licence_type",
  "minerals",
  "holder",
  "province",
  "status",
  "applied_on",
  "granted_on",
  "expires_on",
  "area_km2",
];

function csvCell(value) {
  const text = Array.isArray(value) ? value.join("; ") : value == null ? "" : String(value);
  // A leading =, +, - or @ would be a formula to a spreadsheet.
  const safe = /^[=+\-@]/.test(text) ? `'${text}` : text;
  return /[",\n;]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

async function download(kind) {
  say(t("working"));
  try {
    const data = await shownFeatures();
    const stamp = new Date().toISOString().slice(0, 10);
    if (kind === "geojson") {
      save(`licences-${stamp}.geojson`, "application/geo+json", JSON.stringify(data));
    } else {
      const lines = [["id", ...CSV_FIELDS].join(",")];
      for (const f of data.features)
        lines.push([f.id, ...CSV_FIELDS.map((k) => f.properties[k])].map(csvCell).join(","));
      save(`licences-${stamp}.csv`, "text/csv", `${lines.join("\r\n")}\r\n`);
    }
    say("");
  } catch (error) {
    fail(error);
  }
}

// ------------------------------------------------------------------------ the licence card

let selected = null;

function bboxOf(geometry) {
  let box = [Infinity, Infinity, -Infinity, -Infinity];
  const walk = (c) => {
    if (typeof c[0] === "number") {
      box = [Math.min(box[0], c[0]), Math.min(box[1], c[1]), Math.max(box[2], c[0]), Math.max(box[3], c[1])];
    } else c.forEach(walk);
  };
  walk(geometry.coordinates);
  return box;
}

function fitTo(geometry) {
  const b = bboxOf(geometry);
  map.fitBounds(
    [
      [b[0], b[1]],
      [b[2], b[3]],
    ],
    { padding: 60, maxZoom: 13, duration: 800 },
  );
}

async function selectLicence(id, { fly = false } = {}) {
  try {
    const [licence, history] = await Promise.all([
      api(`/licences/${id}`),
      api(`/licences/${id}/history`),
    ]);
    selected = { licence, history };
    map.getSource("selected").setData(licence);
    renderCard();
    if (fly) fitTo(licence.geometry);
  } catch (error) {
    fail(error);
  }
}

function renderCard() {
  const card = $("card");
  if (!selected) {
    card.hidden = true;
    return;
  }
  const p = selected.licence.properties;
  const dl = $("card-fields");
  dl.replaceChildren();
  const fields = [
    ["licence_no", p.licence_no],
    ["licence_type", p.licence_type.replaceAll("_", " ")],
    ["minerals", (p.minerals || []).join(", ")],
    ["holder", p.holder],
    ["province", p.province],
    ["status", t(`status.${p.status}`)],
    ["applied_on", p.applied_on],
    ["granted_on", p.granted_on],
    ["expires_on", p.expires_on],
    ["area_km2", p.area_km2 == null ? "" : fmt(p.area_km2, 3)],
  ];
  for (const [key, value] of fields) {
    const dt = document.createElement("dt");
    dt.textContent = t(`card.${key}`);
    const dd = document.createElement("dd");
    dd.dataset.field = key;
    dd.textContent = value ?? "–";
    dl.append(dt, dd);
  }
  const body = $("card-history").tBodies[0];
  body.replaceChildren();
  for (const event of selected.history) {
    const tr = body.insertRow();
    tr.insertCell().textContent = new Date(event.occurred_at).toLocaleString(language());
    tr.insertCell().textContent = event.action;
    tr.insertCell().textContent = event.actor;
  }
  card.hidden = false;
}

// ---------------------------------------------------------------------------------- search

async function search(text) {
  const q = text.trim();
  if (!q) return;
  const like = cqlText(`%${q}%`);
  const cql = ["licence_no", "holder", "minerals"]
    .map((field) => `CASEI(${field}) LIKE CASEI(${like})`)
    .join(" OR ");
  const params = new URLSearchParams({ filter: cql, limit: "20" });
  try {
    const data = await api(`/collections/licences/items?${params}`, {
      headers: { Accept: "application/geo+json" },
    });
    const box = $("results");
    box.hidden = false;
    $("results-count").textContent = data.features.length
      ? t("search.results", { n: fmt(data.numberMatched ?? data.features.length, 0) })
      : t("search.none");
    $("results-list").replaceChildren(...data.features.map((f) => licenceRow(f.id, f.properties)));
    if (data.features.length) {
      // The map flies to the first match and its card opens.
      await selectLicence(data.features[0].id, { fly: true });
    }
  } catch (error) {
    fail(error);
  }
}

// ----------------------------------------------------------------- area of interest report

function polygonFeature(geometry) {
  return { type: "Feature", geometry, properties: {} };
}

async function readFile(input) {
  const file = input.files?.[0];
  if (!file) return null;
  const form = new FormData();
  form.append("file", file, file.name);
  const feature = await api("/shapes/read", { method: "POST", body: form });
  input.value = "";
  return feature.geometry;
}

async function aoiReport(geometry) {
  map.getSource("aoi").setData(polygonFeature(geometry));
  map.getSource("free").setData(empty);
  const out = $("aoi-report");
  out.textContent = t("working");
  try {
    const report = await api("/aoi/report", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(geometry),
    });
    if (report.free_ground?.geometry) {
      map.getSource("free").setData(polygonFeature(report.free_ground.geometry));
    }
    lastReport = { report, geometry };
    renderReport();
    fitTo(geometry);
  } catch (error) {
    out.textContent = t("error", { detail: error.message });
    out.classList.add("error");
  }
}

let lastReport = null;

function renderReport() {
  if (!lastReport) return;
  const { report, geometry } = lastReport;
  const out = $("aoi-report");
  out.classList.remove("error");
  out.replaceChildren();
  const line = (text, cls) => {
    const p = document.createElement("p");
    p.textContent = text;
    if (cls) p.className = cls;
    out.append(p);
  };
  line(t("aoi.area", { a: fmt(report.area_km2) }), "aoi-area");
  const free = report.free_ground || {};
  line(t("aoi.free", { a: fmt(free.area_km2 ?? 0), p: fmt(free.share_pct ?? 0, 1) }), "aoi-free");
  line(t("aoi.licences", { n: report.licences.length }), "aoi-licences");
  const ul = document.createElement("ul");
  ul.className = "rows";
  for (const l of report.licences.slice(0, 100)) {
    const li = licenceRow(l.id, l);
    li.querySelector("span:last-child").textContent += ` · ${t("aoi.overlap", { a: fmt(l.overlap_km2, 3) })}`;
    ul.append(li);
  }
  out.append(ul);
  line(t("aoi.reserved", { n: report.reserved_areas.length }));
  if (report.reserved_areas.length) {
    const rl = document.createElement("ul");
    for (const r of report.reserved_areas) {
      const li = document.createElement("li");
      li.textContent = `${r.name} (${r.kind})`;
      rl.append(li);
    }
    out.append(rl);
  }
  const vector = report.survey?.vector || [];
  const rasters = report.survey?.raster || [];
  if (vector.length || rasters.length) {
    line(t("aoi.survey"));
    const sl = document.createElement("ul");
    for (const s of vector) {
      const li = document.createElement("li");
      const groups = (s.groups || []).slice(0, 4).map((g) => g.value).join(", ");
      li.textContent = `${s.name}: ${s.features}${groups ? ` (${groups})` : ""}`;
      sl.append(li);
    }
    for (const s of rasters) {
      const li = document.createElement("li");
      const band = s.bands?.[0] || s.statistics?.[0] || {};
      li.textContent = `${s.name}${band.mean != null ? `: ${fmt(band.mean, 1)}` : ""}`;
      sl.append(li);
    }
    out.append(sl);
  }
  const print = document.createElement("button");
  print.type = "button";
  print.textContent = t("aoi.print");
  print.addEventListener("click", () => printable(geometry));
  out.append(print);
}

async function printable(geometry) {
  try {
    const response = await fetch("/aoi/report?f=html", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/html" },
      body: JSON.stringify(geometry),
    });
    const url = URL.createObjectURL(new Blob([await response.text()], { type: "text/html" }));
    window.open(url, "_blank", "noopener");
  } catch (error) {
    fail(error);
  }
}

// ------------------------------------------------------------------ candidate (officers)

let candidate = null;

function setCandidate(geometry) {
  candidate = geometry;
  map.getSource("aoi").setData(polygonFeature(geometry));
  map.getSource("conflicts").setData(empty);
  map.getSource("free").setData(empty);
  $("candidate-submit").disabled = true;
  $("candidate-report").textContent = "";
  fitTo(geometry);
}

function candidateFeature() {
  const form = new FormData($("candidate-form"));
  const minerals = String(form.get("minerals") || "")
    .split(",")
    .map((m) => m.trim())
    .filter(Boolean);
  const properties = { licence_type: form.get("licence_type"), minerals };
  const holder = String(form.get("holder") || "").trim();
  if (holder) properties.holder = { name: holder };
  return { type: "Feature", geometry: candidate, properties };
}

let lastCheck = null;

async function checkCandidate() {
  const out = $("candidate-report");
  if (!candidate) {
    out.textContent = t("candidate.needshape");
    return;
  }
  out.textContent = t("working");
  try {
    const feature = candidateFeature();
    const result = await api("/overlaps/check", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...feature, properties: { licence_type: feature.properties.licence_type, minerals: feature.properties.minerals } }),
    });
    lastCheck = result;
    map.getSource("conflicts").setData({
      type: "FeatureCollection",
      features: result.conflicts.map((c, i) => ({
        type: "Feature",
        id: i,
        geometry: c.geometry,
        properties: { label: c.licence_no || c.name, overlap_km2: c.overlap_km2 },
      })),
    });
    map.getSource("free").setData(result.available || empty);
    renderCheck();
    $("candidate-submit").disabled = false;
  } catch (error) {
    out.textContent = t("error", { detail: error.message });
  }
}

function renderCheck() {
  if (!lastCheck) return;
  const result = lastCheck;
  const out = $("candidate-report");
  out.replaceChildren();
  const p = (text, cls) => {
    const el = document.createElement("p");
    el.textContent = text;
    if (cls) el.className = cls;
    out.append(el);
  };
  p(result.admissible ? t("candidate.admissible") : t("candidate.inadmissible"), result.admissible ? "ok" : "bad");
  p(result.conflicts.length ? t("candidate.conflicts", { n: result.conflicts.length }) : t("candidate.noconflict"));
  const ul = document.createElement("ul");
  ul.className = "conflicts";
  for (const c of result.conflicts) {
    const li = document.createElement("li");
    li.dataset.conflict = c.licence_no || c.name;
    const what = c.kind === "reserved_area" || !c.licence_no ? `${c.name} (${c.type || c.kind})` : `${c.licence_no} · ${c.holder || ""} · ${t(`status.${c.status}`)}`;
    li.textContent = `${what} · ${t("aoi.overlap", { a: fmt(c.overlap_km2, 3) })} (${fmt(c.overlap_pct_of_candidate, 1)}%)`;
    ul.append(li);
  }
  out.append(ul);
  if (result.available?.properties) p(t("candidate.available", { a: fmt(result.available.properties.area_km2, 3) }));
  for (const r of result.reasons || []) if (r.code !== "conflicts") p(r.detail, "bad");
}

async function submitCandidate() {
  const out = $("candidate-report");
  try {
    // The event log records the signed-in account (the token) as the actor.
    const ack = await api("/licences", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(candidateFeature()),
    });
    const done = document.createElement("p");
    done.className = "ok";
    done.textContent = t("candidate.submitted", { no: ack.properties?.licence_no ?? ack.id });
    out.append(done);
    $("candidate-submit").disabled = true;
  } catch (error) {
    const bad = document.createElement("p");
    bad.className = "bad";
    bad.textContent = t("error", { detail: error.message });
    out.append(bad);
  }
}

// --------------------------------------------------------------------------------- sign-in

async function loadSession() {
  if (!sessionStorage.getItem(TOKEN)) {
    session.user = null;
  } else {
    try {
      session.user = await api("/auth/me");
    } catch {
      sessionStorage.removeItem(TOKEN);
      session.user = null;
    }
  }
  renderSession();
}

function renderSession() {
  const user = session.user;
  $("whoami").textContent = user ? t("signin.as", { user: user.username, role: user.role }) : "";
  $("signin-open").hidden = Boolean(user);
  $("signout").hidden = !user;
  const officer = user && (user.role === "officer" || user.role === "admin");
  $("candidate").hidden = !officer;
}

async function signIn(form) {
  const body = new URLSearchParams({
    grant_type: "password",
    username: form.username.value,
    password: form.password.value,
  });
  const response = await fetch("/auth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok || !data.access_token) {
    const detail = typeof data.detail === "string" ? data.detail : `${response.status}`;
    throw new ApiError(detail);
  }
  sessionStorage.setItem(TOKEN, data.access_token);
  await loadSession();
  reloadRegister();
}

/** What the map and the list show depends on who asks: fetch them again. */
function reloadRegister() {
  map.getSource("licences")?.setTiles([tiles("licences", filterQuery().toString())]);
  refreshList();
}

function wireSignIn() {
  const dialog = $("signin");
  const form = $("signin-form");
  $("signin-open").addEventListener("click", () => {
    $("signin-error").textContent = "";
    dialog.showModal();
    form.username.focus();
  });
  $("signin-cancel").addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await signIn(form);
      form.password.value = "";
      dialog.close();
    } catch (error) {
      $("signin-error").textContent = t("signin.failed", { detail: error.message });
    }
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN);
    session.user = null;
    renderSession();
    reloadRegister();
  });
}

// --------------------------------------------------------------------------------- wiring

function rerender() {
  renderLayerList();
  renderLegend();
  renderList();
  renderCard();
  renderReport();
  renderCheck();
  renderSession();
}

function wire() {
  const lang = $("lang");
  lang.value = language();
  lang.addEventListener("change", () => {
    setLanguage(lang.value);
    rerender();
  });
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search($("search").value);
  });
  $("card-close").addEventListener("click", () => {
    selected = null;
    map.getSource("selected").setData(empty);
    renderCard();
  });
  $("panel-toggle").addEventListener("click", () => {
    const open = document.body.classList.toggle("panel-closed") === false;
    $("panel-toggle").setAttribute("aria-expanded", String(open));
    map.resize();
  });
  $("download-geojson").addEventListener("click", () => download("geojson"));
  $("download-csv").addEventListener("click", () => download("csv"));
  $("aoi-draw").addEventListener("click", () => drawing.start((g) => aoiReport(g)));
  $("aoi-view").addEventListener("click", () => {
    const [w, s, e, n] = viewBox().split(",").map(Number);
    aoiReport({ type: "Polygon", coordinates: [[[w, s], [e, s], [e, n], [w, n], [w, s]]] });
  });
  $("aoi-file").addEventListener("change", async (e) => {
    try {
      const geometry = await readFile(e.target);
      if (geometry) await aoiReport(geometry);
    } catch (error) {
      $("aoi-report").textContent = t("error", { detail: error.message });
    }
  });
  $("candidate-draw").addEventListener("click", () => drawing.start((g) => setCandidate(g)));
  $("candidate-file").addEventListener("change", async (e) => {
    try {
      const geometry = await readFile(e.target);
      if (geometry) setCandidate(geometry);
    } catch (error) {
      $("candidate-report").textContent = t("error", { detail: error.message });
    }
  });
  $("candidate-check").addEventListener("click", checkCandidate);
  $("candidate-submit").addEventListener("click", submitCandidate);
  wireSignIn();

  for (const id of ["licences-fill", "reserved-fill"]) {
    map.on("mouseenter", id, () => {
      if (!drawing.active) map.getCanvas().style.cursor = "pointer";
    });
    map.on("mouseleave", id, () => {
      map.getCanvas().style.cursor = "";
    });
  }
  // Names on hover, in HTML: the style has no text layers, so no glyphs are fetched.
  const hover = new maplibregl.Popup({
    closeButton: false,
    closeOnClick: false,
    className: "hover-popup",
    offset: 12,
  });
  map.on("mousemove", (e) => {
    if (drawing.active) return hover.remove();
    const layers = ["licences-fill", "reserved-fill", "districts-line", "provinces-fill"].filter(
      (id) => map.getLayer(id),
    );
    const [f] = map.queryRenderedFeatures(e.point, { layers });
    if (!f) return hover.remove();
    const p = f.properties;
    let text = p.name || p.district || "";
    if (f.layer.id === "licences-fill") {
      text = `${p.licence_no || ""} ${t(`status.${p.status}`)}`.trim();
    }
    hover.setLngLat(e.lngLat).setText(text).addTo(map);
  });
  map.getCanvas().addEventListener("mouseleave", () => hover.remove());
  map.on("click", "licences-fill", (e) => {
    if (drawing.active || !e.features?.length) return;
    selectLicence(e.features[0].id);
  });
  let timer = null;
  map.on("moveend", () => {
    clearTimeout(timer);
    timer = setTimeout(refreshList, 250);
  });
}

async function start() {
  setLanguage(initialLanguage());
  say(t("busy.loading"));
  const loaded = new Promise((resolve) => map.once("load", resolve));
  const [layers, rasters, colormaps, provinces, types] = await Promise.all([
    api("/survey/layers"),
    api("/rasters"),
    api("/rasters/colormaps"),
    api("/jurisdictions"),
    api("/licence-types"),
  ]);
  await loaded;
  const vectors = layers.layers.filter((l) => l.storage !== "raster");
  const districts = vectors.find((l) => l.slug === "districts_geoboundaries");
  addBaseLayers(districts?.slug);
  catalogue.rasters = rasters.rasters;
  catalogue.colormaps = colormaps.colormaps;
  for (const entry of catalogue.rasters) addRaster(entry);
  addRegisterLayers();
  catalogue.survey = vectors.filter((l) => l !== districts);
  catalogue.survey.forEach((layer, i) => {
    layer.colour = addSurveyLayer(layer, i);
  });
  addWorkLayers();
  fillFilterForm(provinces, types);
  wire();
  renderLayerList();
  renderLegend();
  await Promise.all([loadSession(), refreshList()]);
  say("");
  map.once("idle", () => {
    window.portal.ready = true;
    document.body.dataset.ready = "true";
  });
  map.triggerRepaint();
}

start().catch(fail);
