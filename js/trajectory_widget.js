// The Point Trajectory Editor canvas (TrackGo): per component, a brushed mask on the first frame and an arrow
// (polyline); a preview of the sampled points moving along the arrows. Independent of ComfyUI's app object, like
// tracklet_widget.js. State: the node's hidden STRING input `trajectory_json` (format in trajectory_model.js). The
// plumbing shared with the other editor is CanvasEditor's.

import { button, CanvasEditor, field, h, mountEditor, setOptions } from "./editor_ui.js";
import { toView } from "./geometry.js";
import { arcLengthOffsets, componentColor, emptyState, parseState, previewPoints, rleDecode,
  rleEncode, TRAJECTORY_FORMAT } from "./trajectory_model.js";

const MARGIN = 16;

export class TrajectoryEditor extends CanvasEditor {
  static stateInput = "trajectory_json";
  static canvasWidget = { name: "trajectory_canvas", type: "td_trajectory_editor", minHeight: 380 };

  constructor(node) {
    // Snapshots hold run-length masks: keep fewer. One background: the masks are painted on the first frame.
    super(node, { margin: MARGIN, undoLimit: 60, backgroundLimit: 1 });
    this.components = []; // {label, mask: canvas W x H, arrow: [[x, y], ...], rle: string (cache key)}
    this.selected = -1;
    this.tool = "brush";
    this.brush = 24;
    this.hover = null; // image point under the pointer while no button is down (the brush outline follows it)
    this.exact = null; // {state, points, component} from the last run, valid while the state is unchanged
    this.previewCache = new Map();
    this.start();
  }

  params() {
    return { width: this.intWidget("width", 1024, 0), height: this.intWidget("height", 576, 0),
      numFrames: Math.max(1, this.intWidget("num_frames", 14, 0)), seed: this.intWidget("seed", 0, 0) };
  }

  frameCount() { return this.params().numFrames; }

  imageSize() { return [this.width, this.height]; }

  // --------------------------------------------------------------------------------------------- state
  /** An offscreen W x H canvas; its context is made for read-back (maskBits reads masks after every stroke). */
  newMask(w, h2) {
    const c = Object.assign(document.createElement("canvas"), { width: w, height: h2 });
    c.getContext("2d", { willReadFrequently: true }); // the attribute only counts on the first getContext call
    return c;
  }

  decode(text, p) { return parseState(text, p.width, p.height); }

  blank(p) { return emptyState(p.width, p.height); }

  adopt(state, p) {
    this.width = state.width || p.width;
    this.height = state.height || p.height;
    this.components = state.components.map((c) => {
      const mask = this.newMask(this.width, this.height);
      try {
        const bits = rleDecode(c.mask);
        const [mh, mw] = c.mask.size;
        const img = new ImageData(mw, mh);
        bits.forEach((b, i) => { if (b) img.data.set([255, 255, 255, 255], i * 4); });
        const tmp = this.newMask(mw, mh);
        tmp.getContext("2d").putImageData(img, 0, 0);
        mask.getContext("2d").drawImage(tmp, 0, 0, this.width, this.height);
      } catch (e) {
        this.error = `a mask could not be read (${e.message})`;
      }
      const sameSize = c.mask?.size?.[0] === this.height && c.mask?.size?.[1] === this.width;
      return { label: c.label ?? "", mask, arrow: Array.isArray(c.arrow) ? c.arrow : [],
        rle: sameSize ? JSON.stringify(c.mask) : null };
    });
    this.selected = Math.min(Math.max(this.selected, 0), this.components.length - 1);
  }

  /** Width/height edits on the node rescale masks and arrows (the coordinates are image pixels). */
  followParams(p) {
    if (p.width !== this.width || p.height !== this.height) {
      const sx = p.width / this.width, sy = p.height / this.height;
      for (const c of this.components) {
        const m = this.newMask(p.width, p.height);
        m.getContext("2d").drawImage(c.mask, 0, 0, p.width, p.height);
        c.mask = m;
        c.arrow = c.arrow.map(([x, y]) => [x * sx, y * sy]);
        c.rle = null;
      }
      this.width = p.width;
      this.height = p.height;
      if (this.components.length) this.write();
    }
    if (this.frame >= p.numFrames) this.setFrame(p.numFrames - 1);
  }

  maskBits(c) {
    const data = c.mask.getContext("2d").getImageData(0, 0, this.width, this.height).data;
    const bits = new Uint8Array(this.width * this.height);
    for (let i = 0; i < bits.length; i++) bits[i] = data[i * 4 + 3] > 127 ? 1 : 0;
    return bits;
  }

  /** The state text (also the undo snapshot). */
  snapshot() {
    return JSON.stringify({
      format: TRAJECTORY_FORMAT, version: 1, width: this.width, height: this.height,
      components: this.components.map((c) => {
        const mask = c.rle ? JSON.parse(c.rle) : rleEncode(this.maskBits(c), this.width, this.height);
        c.rle = JSON.stringify(mask);
        return { label: c.label, mask, arrow: c.arrow.map(([x, y]) => [Math.round(x * 100) / 100, Math.round(y * 100) / 100]) };
      }),
    });
  }

  restore(text) {
    this.stateWidget.value = text;
    this.reload();
    this.write();
  }

  addComponent() {
    this.checkpoint();
    this.components.push({ label: "", mask: this.newMask(this.width, this.height), arrow: [], rle: null });
    this.selected = this.components.length - 1;
    this.setTool("brush");
    this.write();
  }

  deleteComponent() {
    if (this.selected < 0) return;
    this.checkpoint();
    this.components.splice(this.selected, 1);
    this.selected = Math.min(this.selected, this.components.length - 1);
    this.write();
  }

  setTool(tool) {
    this.tool = tool;
    for (const [name, b] of Object.entries(this.toolButtons)) b.classList.toggle("td-on", name === tool);
    this.requestRender(); // the brush outline shows for the brush and the eraser only
  }

  /** Exact sampled points of the last run (ui "td_points"), shown instead of the JS preview until the next edit. */
  onExecuted(output) {
    const p = output?.td_points?.[0];
    if (p) this.exact = { state: this.lastWritten, points: p.points, component: p.component };
    this.refreshControls(); // the status line says which points are shown
    this.requestRender();
  }

  // --------------------------------------------------------------------------------------------- DOM
  build() {
    this.compSelect = h("select", { title: "Component (one moving part)", onchange: () => {
      this.selected = Number(this.compSelect.value);
      this.refreshControls();
      this.requestRender();
    } });
    this.toolButtons = {
      brush: button("brush", "Paint the mask (B)", () => this.setTool("brush")),
      erase: button("erase", "Erase the mask (E)", () => this.setTool("erase")),
      arrow: button("arrow", "Drag an arrow (A); Shift+click adds a bend", () => this.setTool("arrow")),
    };
    this.brushInput = h("input", { type: "range", min: "2", max: "160", value: String(this.brush),
      title: "Brush size (image pixels)", style: { flex: "0 1 80px", minWidth: "60px" }, oninput: () => {
        this.brush = Number(this.brushInput.value);
        this.brushValue.textContent = `${this.brush} px`;
        this.requestRender(); // the outline shows the new size
      } });
    this.brushValue = h("span", { textContent: `${this.brush} px`, style: { minWidth: "40px" } });
    this.statusText = h("span", { className: "td-status" });
    this.buildRoot("trajectories", [
      h("div", { className: "td-row" }, [this.compSelect,
        button("+ part", "New component: paint its mask, then its arrow", () => this.addComponent()),
        button("delete", "Delete the component", () => this.deleteComponent()),
        ...Object.values(this.toolButtons), field("size", this.brushInput, this.brushValue), ...this.buildUndoButtons(),
        button("clear arrow", "Remove the arrow: the part stays still", () => {
          const c = this.components[this.selected];
          if (c) { this.checkpoint(); c.arrow = []; this.write(); }
        })]),
      this.buildStage(),
      h("div", { className: "td-row" }, this.buildFrameSlider("Preview frame")),
      h("div", { className: "td-row" }, [this.statusText]),
    ]);
    this.setTool("brush");
    this.listen(this.canvas);
  }

  refreshControls() {
    setOptions(this.compSelect, this.components.map((c, i) => [String(i), `part ${i}${c.label ? " · " + c.label : ""}`,
      { color: componentColor(i) }]), String(this.selected), "no parts");
    this.refreshSharedControls();
    this.statusText.textContent = this.components.length
      ? `${this.components.length} part(s); points: ${this.exact?.state === this.lastWritten ? "exact (last run)"
        : "preview (exact after a run)"}`
      : "+ part, paint the moving part's mask, then drag its arrow";
  }

  paint(c, from, to) {
    const ctx = c.mask.getContext("2d");
    ctx.save();
    ctx.globalCompositeOperation = this.tool === "erase" ? "destination-out" : "source-over";
    ctx.strokeStyle = ctx.fillStyle = "#fff";
    ctx.lineWidth = this.brush;
    ctx.lineCap = "round";
    ctx.beginPath();
    ctx.moveTo(from[0], from[1]);
    ctx.lineTo(to[0] + 0.01, to[1]); // a zero-length line draws nothing: nudge so a click paints a dot
    ctx.stroke();
    ctx.restore();
  }

  onPointerDown(e) {
    if (this.selected < 0) this.addComponent();
    const c = this.components[this.selected];
    const p = this.eventImagePoint(e);
    this.drag = { before: this.snapshot(), last: p, start: p };
    if (this.tool === "arrow") {
      if (e.shiftKey && c.arrow.length >= 2) c.arrow.push(p);
      else c.arrow = [p, p.slice()];
      this.drag.appendOnly = e.shiftKey;
    } else {
      this.paint(c, p, p);
      c.rle = null;
    }
    this.requestRender();
  }

  onPointerMove(e) {
    const p = this.eventImagePoint(e);
    if (!this.drag) { // hovering: the brush outline shows where and how large a stroke would paint
      this.hover = p;
      if (this.tool !== "arrow") this.requestRender();
      return;
    }
    const c = this.components[this.selected];
    if (this.tool === "arrow") c.arrow[c.arrow.length - 1] = p;
    else { this.paint(c, this.drag.last, p); c.rle = null; }
    this.drag.last = p;
    this.requestRender();
  }

  onPointerLeave() {
    this.hover = null;
    if (this.tool !== "arrow") this.requestRender();
  }

  onPointerUp(e, d) {
    const c = this.components[this.selected];
    if (this.tool === "arrow" && !d.appendOnly && Math.hypot(d.last[0] - d.start[0], d.last[1] - d.start[1]) < 1) {
      c.arrow = []; // a click is not an arrow
    }
    this.undo.push(d.before);
    this.write();
  }

  keyActions() {
    return { b: () => this.setTool("brush"), e: () => this.setTool("erase"), a: () => this.setTool("arrow"),
      delete: () => this.deleteComponent(), arrowleft: () => this.setFrame(this.frame - 1),
      arrowright: () => this.setFrame(this.frame + 1) };
  }

  // --------------------------------------------------------------------------------------------- drawing
  /** Sampled points per component at frame 0: exact ones from the last run, else the cached JS preview. */
  startPoints() {
    if (this.exact && this.exact.state === this.lastWritten) {
      const per = this.components.map(() => []);
      this.exact.points.forEach((p, i) => per[this.exact.component[i]]?.push(p));
      return per;
    }
    const seed = this.params().seed;
    return this.components.map((c) => {
      if (!c.rle) return []; // mid-stroke: the preview waits for the stroke to end
      const key = `${c.rle}|${seed}`;
      if (!this.previewCache.has(key)) {
        if (this.previewCache.size > 64) this.previewCache.clear();
        this.previewCache.set(key, previewPoints(rleDecode(JSON.parse(c.rle)), this.width, this.height, seed));
      }
      return this.previewCache.get(key);
    });
  }

  render() {
    const frame = this.beginRender();
    if (!frame) return;
    const { ctx, t, ix, iy, iw, ih } = frame;

    const n = this.params().numFrames;
    const starts = this.startPoints();
    this.components.forEach((comp, i) => {
      // Mask tinted with the component's colour (the same colour its points get in the conditioning video).
      const tint = this.newMask(this.width, this.height), tctx = tint.getContext("2d");
      tctx.drawImage(comp.mask, 0, 0);
      tctx.globalCompositeOperation = "source-in";
      tctx.fillStyle = componentColor(i, i === this.selected ? 0.5 : 0.3);
      tctx.fillRect(0, 0, this.width, this.height);
      ctx.drawImage(tint, ix, iy, iw, ih);
      const arrow = comp.arrow.length >= 2 ? comp.arrow : null;
      if (arrow) {
        ctx.strokeStyle = componentColor(i);
        ctx.lineWidth = i === this.selected ? 3 : 2;
        ctx.beginPath();
        arrow.forEach(([x, y], j) => { const [vx, vy] = toView(t, x, y); if (j) ctx.lineTo(vx, vy); else ctx.moveTo(vx, vy); });
        ctx.stroke();
        const [ax, ay] = toView(t, ...arrow[arrow.length - 1]), [bx, by] = toView(t, ...arrow[arrow.length - 2]);
        const ang = Math.atan2(ay - by, ax - bx);
        ctx.beginPath();
        ctx.moveTo(ax, ay);
        ctx.lineTo(ax - 12 * Math.cos(ang - 0.4), ay - 12 * Math.sin(ang - 0.4));
        ctx.lineTo(ax - 12 * Math.cos(ang + 0.4), ay - 12 * Math.sin(ang + 0.4));
        ctx.closePath();
        ctx.fillStyle = componentColor(i);
        ctx.fill();
      }
      const off = arrow ? arcLengthOffsets(arrow, n)[Math.min(this.frame, n - 1)] : [0, 0];
      for (const [x, y] of starts[i] ?? []) {
        const [vx, vy] = toView(t, x + off[0], y + off[1]);
        ctx.fillStyle = componentColor(i);
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1;
        ctx.beginPath();
        ctx.arc(vx, vy, 3, 0, 2 * Math.PI);
        ctx.fill();
        ctx.stroke();
      }
    });
    const at = this.drag ? this.drag.last : this.hover;
    if (at && this.tool !== "arrow") { // the brush outline under the pointer, while painting and while hovering
      const [vx, vy] = toView(t, ...at), r = Math.max(1, (this.brush / 2) * t.scale);
      ctx.lineWidth = 1;
      ctx.strokeStyle = "#000"; // dark and light rings: visible on any background
      ctx.beginPath();
      ctx.arc(vx, vy, r + 1, 0, 2 * Math.PI);
      ctx.stroke();
      ctx.strokeStyle = "#fff";
      ctx.beginPath();
      ctx.arc(vx, vy, r, 0, 2 * Math.PI);
      ctx.stroke();
    }
    this.warning.textContent = this.error ? `⚠ ${this.error}` : "";
  }
}

export function mountTrajectoryEditor(node) {
  return mountEditor(node, TrajectoryEditor);
}
