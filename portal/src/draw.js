// Drawing a polygon on the map: click each corner, then Finish (or Enter, or click the
// first corner again); Escape or Cancel gives up. Backspace removes the last corner.
const empty = { type: "FeatureCollection", features: [] };

export class Drawing {
  constructor(map, bar) {
    this.map = map;
    this.bar = bar;
    this.points = [];
    this.active = false;
    this.done = null;
    this.onClick = (e) => this.add([e.lngLat.lng, e.lngLat.lat]);
    this.onKey = (e) => {
      if (!this.active) return;
      if (e.key === "Enter") this.finish();
      else if (e.key === "Escape") this.cancel();
      else if (e.key === "Backspace") {
        this.points.pop();
        this.render();
      } else return;
      e.preventDefault();
    };
    bar.querySelector("#draw-finish").addEventListener("click", () => this.finish());
    bar.querySelector("#draw-cancel").addEventListener("click", () => this.cancel());
  }

  addLayers() {
    this.map.addSource("draw", { type: "geojson", data: empty });
    this.map.addLayer({
      id: "draw-fill",
      type: "fill",
      source: "draw",
      filter: ["==", ["geometry-type"], "Polygon"],
      paint: { "fill-color": "#ff7f00", "fill-opacity": 0.2 },
    });
    this.map.addLayer({
      id: "draw-line",
      type: "line",
      source: "draw",
      paint: { "line-color": "#ff7f00", "line-width": 2 },
    });
    this.map.addLayer({
      id: "draw-points",
      type: "circle",
      source: "draw",
      filter: ["==", ["geometry-type"], "Point"],
      paint: { "circle-radius": 5, "circle-color": "#ff7f00", "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 },
    });
  }

  /** Start drawing; ``done`` gets the GeoJSON Polygon when the shape is finished. */
  start(done) {
    this.cancel();
    this.active = true;
    this.done = done;
    this.points = [];
    this.map.on("click", this.onClick);
    document.addEventListener("keydown", this.onKey);
    this.map.getCanvas().style.cursor = "crosshair";
    this.map.doubleClickZoom.disable();
    this.bar.hidden = false;
    this.bar.querySelector("#draw-finish").focus();
    this.render();
  }

  add(point) {
    const first = this.points[0];
    if (first && this.points.length >= 3) {
      const a = this.map.project(first);
      const b = this.map.project(point);
      if (Math.hypot(a.x - b.x, a.y - b.y) < 8) {
        this.finish();
        return;
      }
    }
    this.points.push(point);
    this.render();
  }

  render() {
    const features = this.points.map((c) => ({ type: "Feature", geometry: { type: "Point", coordinates: c }, properties: {} }));
    if (this.points.length >= 3) {
      features.push({
        type: "Feature",
        geometry: { type: "Polygon", coordinates: [[...this.points, this.points[0]]] },
        properties: {},
      });
    } else if (this.points.length === 2) {
      features.push({ type: "Feature", geometry: { type: "LineString", coordinates: this.points }, properties: {} });
    }
    this.map.getSource("draw")?.setData({ type: "FeatureCollection", features });
  }

  stop() {
    this.active = false;
    this.map.off("click", this.onClick);
    document.removeEventListener("keydown", this.onKey);
    this.map.getCanvas().style.cursor = "";
    this.map.doubleClickZoom.enable();
    this.bar.hidden = true;
    this.map.getSource("draw")?.setData(empty);
  }

  finish() {
    if (!this.active || this.points.length < 3) return;
    const ring = [...this.points, this.points[0]];
    // GeoJSON (RFC 7946) wants the exterior ring counter-clockwise.
    let twiceArea = 0;
    for (let i = 0; i < ring.length - 1; i++) twiceArea += ring[i][0] * ring[i + 1][1] - ring[i + 1][0] * ring[i][1];
    if (twiceArea < 0) ring.reverse();
    const done = this.done;
    this.stop();
    done?.({ type: "Polygon", coordinates: [ring] });
  }

  cancel() {
    if (this.active) this.stop();
  }
}
