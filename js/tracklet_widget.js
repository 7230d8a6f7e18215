// The Tracklet Editor canvas, independent of ComfyUI's app object: it needs only a node with `widgets` (by name)
// and `addDOMWidget`, so the browser test mounts it on a stand-in node, and tracklet_editor.js on the real one.
//
// State: the node's declared STRING input `tracklets_json` holds our tracklet JSON v1 (the source of truth, saved in
// the workflow and the API prompt); this widget parses it, edits a working copy, and writes it back after each edit.
// The canvas DOM widget itself is serialize:false. The plumbing shared with the other editor is CanvasEditor's.

import { button, CanvasEditor, downloadText, field, h, iconButton, isTextTarget, localPoint, mountEditor, readFile,
  setOptions } from "./editor_ui.js";
import { boxFromPoints, cursorFor, dragBox, handlePoints, hitTest, isOutside, isWhollyOutside, roundBox,
  toView } from "./geometry.js";
import { addObject, deleteKeyframe, deleteObject, evaluate, findObject, importText, INTERPOLATIONS, keyframeAt,
  neighbourKeyframe, outsideWarnings, parseDoc, resampleDoc, serializeDoc, setKeyframe, toMOT,
  toTracks } from "./tracklet_model.js";

const MARGIN = 28; // CSS px around the image: boxes outside it stay visible and grabbable
const HANDLE_PX = 6; // grab tolerance of a handle, in CSS px
const MIN_DRAW_PX = 4; // a shorter drag on empty canvas is a click (deselect), not a box

export class TrackletEditor extends CanvasEditor {
  static stateInput = "tracklets_json";
  static canvasWidget = { name: "tracklet_canvas", type: "td_tracklet_editor", minHeight: 420 };

  /**
   * @param {object} node a LiteGraph node (or a stand-in) with widgets tracklets_json, width, height, num_frames
   */
  constructor(node) {
    super(node, { margin: MARGIN });
    this.selected = null; // object id
    this.playing = false;
    this.clipboard = null; // copied keyframe {box, visible}
    this.start();
  }

  params() {
    return { width: this.intWidget("width", 1024), height: this.intWidget("height", 576),
      numFrames: this.intWidget("num_frames", 14) };
  }

  frameCount() { return this.doc.num_frames; }

  imageSize() { return [this.doc.width, this.doc.height]; }

  // --------------------------------------------------------------------------------------------- state in/out
  decode(text, p) { return parseDoc(text, p); }

  blank(p) { return parseDoc("", p); }

  adopt(doc) {
    this.doc = doc;
    if (!findObject(this.doc, this.selected)) this.selected = this.doc.objects[0]?.id ?? null;
    this.frame = Math.min(this.frame, this.doc.num_frames - 1);
  }

  /** Follow width/height/num_frames edits on the node: the motion is resampled exactly as Python would. */
  followParams(p) {
    if (p.width !== this.doc.width || p.height !== this.doc.height || p.numFrames !== this.doc.num_frames) {
      // An empty document just takes the new size (resample() would also rescale fps to keep the duration).
      this.doc = this.doc.objects.length ? resampleDoc(this.doc, p.numFrames, p.width, p.height)
        : { ...this.doc, width: p.width, height: p.height, num_frames: p.numFrames };
      this.frame = Math.min(this.frame, p.numFrames - 1);
      this.write();
    }
  }

  snapshot() { return serializeDoc(this.doc); }

  restore(text) {
    this.doc = parseDoc(text);
    this.setParam("width", this.doc.width);
    this.setParam("height", this.doc.height);
    this.setParam("num_frames", this.doc.num_frames);
    if (!findObject(this.doc, this.selected)) this.selected = this.doc.objects[0]?.id ?? null;
    this.frame = Math.min(this.frame, this.doc.num_frames - 1);
    this.write();
  }

  get obj() { return findObject(this.doc, this.selected); }

  // --------------------------------------------------------------------------------------------- edits
  newObject() {
    this.checkpoint();
    const o = addObject(this.doc, "");
    this.selected = o.id;
    this.write();
    this.status(`object ${o.id}: drag on the canvas to draw its box`);
  }

  deleteSelected() {
    if (!this.obj) return;
    this.checkpoint();
    deleteObject(this.doc, this.selected);
    this.selected = this.doc.objects[0]?.id ?? null;
    this.write();
  }

  /** Delete the selected object's keyframe here; an object left without keyframes goes too (it has no box). */
  deleteKeyframeHere() {
    const o = this.obj;
    if (!o || !keyframeAt(o, this.frame)) return;
    this.checkpoint();
    deleteKeyframe(o, this.frame);
    if (!o.keyframes.length) {
      deleteObject(this.doc, o.id);
      this.selected = this.doc.objects[0]?.id ?? null;
    }
    this.write();
  }

  /** Key the selected object at this frame with its current (interpolated) box. */
  keyHere() {
    const o = this.obj;
    const e = o && evaluate(o, this.frame);
    if (!e || keyframeAt(o, this.frame)) return;
    this.checkpoint();
    setKeyframe(o, this.frame, roundBox(e.box), e.visible || this.frame < o.keyframes[0].frame);
    this.write();
  }

  toggleVisible() {
    const o = this.obj;
    const e = o && evaluate(o, this.frame);
    if (!e) return;
    this.checkpoint();
    setKeyframe(o, this.frame, keyframeAt(o, this.frame)?.box ?? roundBox(e.box), !e.visible);
    this.write();
  }

  copyKeyframe() {
    const e = this.obj && evaluate(this.obj, this.frame);
    if (e) {
      this.clipboard = { box: e.box.slice(), visible: e.visible };
      this.status(`copied the box of object ${this.selected} at frame ${this.frame}`);
    }
  }

  pasteKeyframe() {
    if (!this.clipboard || !this.obj) return;
    this.checkpoint();
    setKeyframe(this.obj, this.frame, roundBox(this.clipboard.box), this.clipboard.visible);
    this.write();
  }

  setBoxHere(box) {
    const o = this.obj;
    if (!o) return;
    const e = evaluate(o, this.frame);
    const visible = !e || e.visible || this.frame < o.keyframes[0].frame;
    setKeyframe(o, this.frame, roundBox(box), visible);
  }

  togglePlay() {
    this.playing = !this.playing;
    this.playButton.textContent = this.playing ? "pause" : "play";
    if (!this.playing) return;
    let last = performance.now();
    const tick = (now) => {
      if (!this.playing || !this.root.isConnected) { this.playing = false; return; }
      if (now - last >= 1000 / Math.max(1, this.doc.fps)) {
        last = now;
        this.setFrame((this.frame + 1) % this.doc.num_frames);
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  async importFile(file) {
    try {
      const text = await readFile(file);
      const doc = importText(text, this.doc);
      this.checkpoint();
      this.restore(serializeDoc(doc));
      this.status(`imported ${doc.objects.length} objects from ${file.name}`);
    } catch (e) {
      this.status(`import failed: ${e.message}`, true);
    }
  }

  exportAs(kind) {
    if (kind === "json") downloadText(serializeDoc(this.doc, 2), "tracklets.json");
    else if (kind === "mot") downloadText(toMOT(this.doc), "gt.txt", "text/plain");
    else if (kind === "tracks") downloadText(JSON.stringify(toTracks(this.doc)), "tracks.json");
  }

  async backgroundFromFile(file) {
    await super.backgroundFromFile(file);
    this.status(`background: ${file.name} (not saved in the workflow; connect an image to keep it)`);
  }

  // --------------------------------------------------------------------------------------------- DOM
  build() {
    this.objectSelect = h("select", { title: "Selected object", onchange: () => {
      this.selected = Number(this.objectSelect.value);
      this.refreshControls();
      this.requestRender();
    } });
    this.labelInput = h("input", { className: "td-label", placeholder: "label", title: "Label (category text)",
      onchange: () => { if (this.obj) { this.checkpoint(); this.obj.label = this.labelInput.value; this.write(); } } });
    this.colorInput = h("input", { type: "color", title: "Colour", onchange: () => {
      if (this.obj) { this.checkpoint(); this.obj.color = this.colorInput.value.toLowerCase(); this.write(); }
    } });
    this.interpSelect = h("select", { title: "Interpolation between this object's keyframes", onchange: () => {
      if (this.obj) { this.checkpoint(); this.obj.interpolation = this.interpSelect.value; this.write(); }
    } }, INTERPOLATIONS.map((m) => h("option", { value: m, textContent: m })));
    this.visibleButton = button("visible", "Visible at this frame (H): toggling keys an appear/disappear", () =>
      this.toggleVisible());
    this.fileInput = h("input", { type: "file", accept: ".json,.txt,.csv", style: { display: "none" },
      onchange: () => { if (this.fileInput.files[0]) this.importFile(this.fileInput.files[0]); this.fileInput.value = ""; } });
    this.exportSelect = h("select", { title: "Export", onchange: () => {
      this.exportAs(this.exportSelect.value);
      this.exportSelect.value = "";
    } }, [["", "Export…"], ["json", "tracklets JSON"], ["mot", "MOT gt.txt"], ["tracks", "core TRACKS JSON"]]
      .map(([value, textContent]) => h("option", { value, textContent })));

    this.buildStage(); // sets this.stage

    // The box at this frame, typed in: each field captioned (a placeholder would vanish once it holds a value).
    const coords = ["x1", "y1", "x2", "y2"];
    this.numInputs = coords.map((name) => h("input", { type: "number", step: "1",
      title: `${name} of the box at this frame (image pixels)`, onchange: () => this.numericEdit() }));
    this.statusText = h("span", { className: "td-status" });
    this.sizeButton = button("use image size", "Set width/height to the background's size (boxes are rescaled)",
      () => this.useImageSize());

    const [slider, frameLabel] = this.buildFrameSlider("Frame");
    this.playButton = button("play", "Play / pause (Space)", () => this.togglePlay());
    this.strip = h("canvas", { className: "td-strip", title: "Keyframes of the selected object (click to seek)" });

    this.buildRoot("tracklets", [
      h("div", { className: "td-row" }, [this.objectSelect,
        button("+ object", "New object (N), then draw its box", () => this.newObject()),
        button("delete", "Delete the object (Shift+Delete)", () => this.deleteSelected()),
        this.labelInput, this.colorInput, this.interpSelect, this.visibleButton]),
      this.stage,
      h("div", { className: "td-row" }, [...this.numInputs.map((input, i) => field(coords[i], input)),
        button("key", "Keyframe here (K)", () => this.keyHere()),
        button("unkey", "Delete this keyframe (Delete)", () => this.deleteKeyframeHere()), ...this.buildUndoButtons(),
        button("import", "Import tracklets JSON, MOT gt.txt or core TRACKS JSON", () => this.fileInput.click()),
        this.exportSelect, this.fileInput]),
      h("div", { className: "td-row" }, [
        iconButton("◀", "Previous frame (←); Shift: previous keyframe", () => this.step(-1)), this.playButton,
        iconButton("▶", "Next frame (→); Shift: next keyframe", () => this.step(1)), slider, frameLabel]),
      this.strip,
      h("div", { className: "td-row" }, [this.statusText, this.sizeButton]),
    ]);

    this.listen(this.stage);
    this.strip.addEventListener("pointerdown", (e) => this.onStrip(e, true));
    this.strip.addEventListener("pointermove", (e) => { if (e.buttons & 1) this.onStrip(e, false); });
  }

  status(text, isError = false) {
    this.statusText.textContent = text;
    this.statusText.style.color = isError ? "#ff6b6b" : "";
  }

  /** Bring every control in line with the document (after any edit, selection or frame change). */
  refreshControls() {
    const o = this.obj;
    setOptions(this.objectSelect, this.doc.objects.map((x) => [String(x.id),
      `object ${x.id}${x.label ? " · " + x.label : ""}${x.keyframes.length ? "" : " (no box)"}`]),
    o ? String(o.id) : "", this.doc.objects.length ? "(none)" : "no objects");
    for (const el of [this.labelInput, this.colorInput, this.interpSelect, this.visibleButton]) el.disabled = !o;
    if (o && document.activeElement !== this.labelInput) this.labelInput.value = o.label;
    if (o) { this.colorInput.value = o.color; this.interpSelect.value = o.interpolation; }
    const e = o && evaluate(o, this.frame);
    this.visibleButton.textContent = e && !e.visible ? "hidden" : "visible";
    this.visibleButton.classList.toggle("td-on", !!(e && e.visible));
    this.numInputs.forEach((input, i) => {
      input.disabled = !o;
      if (document.activeElement !== input) input.value = e ? String(Math.round(e.box[i] * 100) / 100) : "";
    });
    this.refreshSharedControls();
    const bg = this.backgroundFor(this.frame);
    const differs = bg && Math.abs(bg.naturalWidth / bg.naturalHeight - this.doc.width / this.doc.height) > 0.01;
    this.sizeButton.style.display = differs ? "" : "none";
  }

  numericEdit() {
    const vals = this.numInputs.map((i) => Number(i.value));
    if (!this.obj || vals.some((v) => !Number.isFinite(v))) return;
    // Taken as typed, never re-sorted: sorting mid-entry would shuffle the fields the user has not reached yet.
    const box = vals;
    if (box[2] <= box[0] || box[3] <= box[1]) return this.status("x2 must exceed x1 and y2 exceed y1", true);
    this.checkpoint();
    this.setBoxHere(box);
    this.write();
  }

  useImageSize() {
    const bg = this.backgroundFor(this.frame);
    if (!bg) return;
    this.checkpoint();
    this.setParam("width", bg.naturalWidth);
    this.setParam("height", bg.naturalHeight);
    this.sync();
  }

  step(direction, toKeyframe = false) {
    if (toKeyframe && this.obj) {
      const f = neighbourKeyframe(this.obj, this.frame, direction);
      if (f !== null) this.setFrame(f);
      return;
    }
    this.setFrame((this.frame + direction + this.doc.num_frames) % this.doc.num_frames);
  }

  // --------------------------------------------------------------------------------------------- input
  /** What is under the pointer: the selected object first (its handles), then any visible box, topmost first. */
  pick(x, y) {
    const tol = HANDLE_PX / this.transform().scale;
    const order = [this.obj, ...[...this.doc.objects].reverse().filter((o) => o.id !== this.selected)];
    for (const o of order) {
      const e = o && evaluate(o, this.frame);
      if (!e || (!e.visible && o.id !== this.selected)) continue;
      const handle = hitTest(e.box, x, y, tol);
      if (handle) return { obj: o, handle, box: e.box };
    }
    return null;
  }

  onPointerDown(e) {
    const [x, y] = this.eventImagePoint(e);
    const hit = this.pick(x, y);
    const before = this.snapshot();
    if (hit) {
      this.selected = hit.obj.id;
      this.drag = { kind: "edit", handle: hit.handle, start: hit.box.slice(), x0: x, y0: y, before };
    } else {
      // Empty space: a new box. It goes to a freshly added object that has none yet, else to a new object.
      const pending = this.obj && !this.obj.keyframes.length ? this.obj : null;
      this.drag = { kind: "draw", pending, x0: x, y0: y, before, obj: null };
    }
    this.refreshControls();
    this.requestRender();
  }

  onPointerMove(e) {
    const [x, y] = this.eventImagePoint(e);
    if (!this.drag) {
      const hit = this.pick(x, y);
      this.canvas.style.cursor = cursorFor(hit?.handle ?? null);
      return;
    }
    const d = this.drag;
    if (d.kind === "edit") {
      this.setBoxHere(dragBox(d.start, d.handle, x - d.x0, y - d.y0, 1));
    } else {
      const scale = this.transform().scale;
      if (!d.obj && Math.hypot(x - d.x0, y - d.y0) * scale < MIN_DRAW_PX) return;
      if (!d.obj) {
        d.obj = d.pending ?? addObject(this.doc, "");
        this.selected = d.obj.id;
      }
      setKeyframe(d.obj, this.frame, roundBox(boxFromPoints(d.x0, d.y0, x, y)), true);
    }
    this.refreshControls();
    this.requestRender();
  }

  onPointerUp(e, d) {
    if (d.kind === "draw" && !d.obj) {
      if (!d.pending) this.selected = null; // a click on empty space deselects
      this.refreshControls();
      this.requestRender();
      return;
    }
    if (this.snapshot() !== d.before) {
      this.undo.push(d.before);
      this.write();
    }
  }

  onStrip(e, capture) {
    if (capture) this.strip.setPointerCapture?.(e.pointerId);
    const [x] = localPoint(this.strip, e);
    this.setFrame((x / Math.max(1, this.strip.offsetWidth)) * (this.doc.num_frames - 1));
  }

  onKey(e) {
    if (!isTextTarget(e) && (e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "v") {
      // The paste event that follows does the work (it may carry an image instead), so no preventDefault here:
      // that would cancel the paste event itself.
      e.stopPropagation();
      return;
    }
    super.onKey(e);
  }

  keyActions(e) {
    if (e.altKey) return {};
    return {
      delete: () => (e.shiftKey ? this.deleteSelected() : this.deleteKeyframeHere()),
      backspace: () => (e.shiftKey ? this.deleteSelected() : this.deleteKeyframeHere()),
      arrowleft: () => this.step(-1, e.shiftKey),
      arrowright: () => this.step(1, e.shiftKey),
      home: () => this.setFrame(0),
      end: () => this.setFrame(this.doc.num_frames - 1),
      ",": () => this.step(-1),
      ".": () => this.step(1),
      " ": () => this.togglePlay(),
      k: () => this.keyHere(),
      h: () => this.toggleVisible(),
      n: () => this.newObject(),
      escape: () => { this.selected = null; this.refreshControls(); this.requestRender(); },
    };
  }

  modKeyActions() { return { c: () => this.copyKeyframe() }; }

  /** Ctrl+V without an image: paste the copied keyframe. */
  onPasteNoImage(e) {
    e.preventDefault();
    e.stopPropagation();
    this.pasteKeyframe();
  }

  /** A dropped tracklet file is imported. */
  dropFile(file) { this.importFile(file); }

  // --------------------------------------------------------------------------------------------- drawing
  render() {
    const frame = this.beginRender("connect an image, run once, or paste / drop one here");
    if (!frame) return;
    const { ctx, t } = frame, doc = this.doc;

    const outsideNow = [];
    for (const o of doc.objects) {
      const e = evaluate(o, this.frame);
      if (!e) continue;
      const sel = o.id === this.selected;
      if (!e.visible && !sel) continue;
      const [x1, y1] = toView(t, e.box[0], e.box[1]), [x2, y2] = toView(t, e.box[2], e.box[3]);
      const keyed = !!keyframeAt(o, this.frame);
      const outside = isOutside(e.box, doc.width, doc.height);
      if (outside && e.visible) outsideNow.push(o.id);
      ctx.save();
      ctx.globalAlpha = e.visible ? 1 : 0.45;
      ctx.setLineDash(keyed ? [] : [6, 4]); // solid on keyframes, dashed where interpolated
      if (e.visible) {
        ctx.fillStyle = o.color + "22";
        ctx.fillRect(x1, y1, x2 - x1, y2 - y1);
      }
      ctx.strokeStyle = outside ? "#ff3b3b" : o.color;
      ctx.lineWidth = sel ? 2.5 : 1.5;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      ctx.setLineDash([]);
      const tag = `${o.id}${o.label ? " " + o.label : ""}${e.visible ? "" : " (hidden)"}${outside ? " ⚠" : ""}`;
      ctx.font = "11px sans-serif";
      const tw = ctx.measureText(tag).width + 6;
      ctx.fillStyle = outside ? "#ff3b3b" : o.color;
      ctx.fillRect(x1, y1 - 14, tw, 14);
      ctx.fillStyle = "#000";
      ctx.fillText(tag, x1 + 3, y1 - 3);
      if (sel) {
        ctx.fillStyle = "#fff";
        ctx.strokeStyle = "#000";
        ctx.lineWidth = 1;
        for (const [hx, hy] of Object.values(handlePoints(e.box))) {
          const [vx, vy] = toView(t, hx, hy);
          ctx.fillRect(vx - 3.5, vy - 3.5, 7, 7);
          ctx.strokeRect(vx - 3.5, vy - 3.5, 7, 7);
        }
      }
      ctx.restore();
    }

    const lines = [];
    if (this.error) lines.push(`⚠ ${this.error}`);
    if (outsideNow.length) {
      const gone = outsideNow.filter((id) => isWhollyOutside(evaluate(findObject(doc, id), this.frame).box, doc.width,
        doc.height));
      lines.push(`⚠ object ${outsideNow.join(", ")} reaches outside the image at this frame: clamped when run`
        + (gone.length ? `; ${gone.join(", ")} entirely outside (hidden)` : ""));
    }
    const warned = outsideWarnings(doc).length;
    if (warned) lines.push(`⚠ ${warned} keyframe(s) outside the ${doc.width}×${doc.height} image`);
    this.warning.textContent = lines.join("\n");
    this.root.dataset.warnings = String(warned);
    this.renderStrip();
  }

  renderStrip() {
    const s = this.strip, dpr = window.devicePixelRatio || 1, w = s.clientWidth, hh = s.clientHeight;
    if (!w || !hh) return;
    s.width = Math.round(w * dpr);
    s.height = Math.round(hh * dpr);
    const ctx = s.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#222";
    ctx.fillRect(0, 0, w, hh);
    const n = this.doc.num_frames, xOf = (f) => 4 + (n > 1 ? (f / (n - 1)) * (w - 8) : 0);
    ctx.fillStyle = "#555";
    for (let f = 0; f < n; f++) ctx.fillRect(xOf(f) - 0.5, hh - 4, 1, 4);
    for (const o of this.doc.objects) {
      if (o.id === this.selected) continue;
      ctx.fillStyle = o.color + "88";
      for (const k of o.keyframes) ctx.fillRect(xOf(k.frame) - 1, 2, 2, 4);
    }
    ctx.fillStyle = "#ffcc33";
    ctx.fillRect(xOf(this.frame) - 1, 0, 2, hh);
    const o = this.obj;
    if (!o) return;
    for (const k of o.keyframes) { // diamonds: filled = visible from here on, hollow = hidden (disappears)
      const x = xOf(k.frame), y = hh / 2 + 1;
      ctx.beginPath();
      ctx.moveTo(x, y - 5); ctx.lineTo(x + 5, y); ctx.lineTo(x, y + 5); ctx.lineTo(x - 5, y); ctx.closePath();
      ctx.fillStyle = k.visible ? o.color : "#222";
      ctx.strokeStyle = o.color;
      ctx.fill();
      ctx.stroke();
    }
  }

  destroy() {
    this.playing = false;
    super.destroy();
  }
}

/** Mount the editor on a node (see mountEditor). */
export function mountTrackletEditor(node) {
  return mountEditor(node, TrackletEditor);
}
