// The Tracklet Editor canvas, independent of ComfyUI's app object: it needs only a node with `widgets` (by name)
// and `addDOMWidget`, so the browser test mounts it on a stand-in node, and tracklet_editor.js on the real one.
//
// State: the node's declared STRING input `tracklets_json` holds our tracklet JSON v1 (the source of truth, saved in
// the workflow and the API prompt); this widget parses it, edits a working copy, and writes it back after each edit.
// The canvas DOM widget itself is serialize:false. Rendering is batched through requestAnimationFrame.

import { CanvasEditor, clientPoint, makeKeySink, downloadText, h, injectStyles, isTextTarget, localPoint, mountEditor,
  readFile } from "./editor_ui.js";
import { boxFromPoints, cursorFor, dragBox, fitTransform, handlePoints, hitTest, isOutside, isWhollyOutside, roundBox,
  toImage, toView } from "./geometry.js";
import { addObject, deleteKeyframe, deleteObject, evaluate, findObject, importText, INTERPOLATIONS, keyframeAt,
  neighbourKeyframe, outsideWarnings, parseDoc, resampleDoc, serializeDoc, setKeyframe, toMOT,
  toTracks } from "./tracklet_model.js";
import { UndoStack } from "./undo.js";

const MARGIN = 28; // CSS px around the image: boxes outside it stay visible and grabbable
const HANDLE_PX = 6; // grab tolerance of a handle, in CSS px
const MIN_DRAW_PX = 4; // a shorter drag on empty canvas is a click (deselect), not a box

export class TrackletEditor extends CanvasEditor {
  /**
   * @param {object} node a LiteGraph node (or a stand-in) with widgets tracklets_json, width, height, num_frames
   */
  constructor(node) {
    super();
    this.node = node;
    this.stateWidget = this.widget("tracklets_json");
    this.undo = new UndoStack();
    this.frame = 0;
    this.selected = null; // object id
    this.drag = null;
    this.playing = false;
    this.clipboard = null; // copied keyframe {box, visible}
    this.background = []; // per editor frame: HTMLImageElement (may repeat); empty = none
    this.error = "";
    this.lastWritten = null;
    this.renderQueued = false;
    injectStyles();
    this.build();
    this.reload();
    // Cheap safety net for changes that reach the widgets without a callback (workflow load, Vue widgets, links).
    this.syncTimer = setInterval(() => this.sync(), 500);
  }

  widget(name) { return this.node.widgets?.find((w) => w.name === name) ?? null; }

  params() {
    const v = (n, d) => { const x = Number(this.widget(n)?.value); return Number.isInteger(x) && x > 0 ? x : d; };
    return { width: v("width", 1024), height: v("height", 576), numFrames: v("num_frames", 14) };
  }

  setParam(name, value) {
    const w = this.widget(name);
    if (w && w.value !== value) {
      w.value = value;
      w.callback?.(value);
    }
  }

  // --------------------------------------------------------------------------------------------- state in/out
  /** Re-read the document from the state widget (workflow load, undo, text pasted into the hidden input). */
  reload() {
    const text = this.stateWidget?.value ?? "";
    const p = this.params();
    try {
      this.doc = parseDoc(text, p);
      this.error = "";
    } catch (e) {
      // Keep the text untouched (the user may fix it by hand); edit an empty document meanwhile.
      this.doc = parseDoc("", p);
      this.error = `tracklets_json is not valid (${e.message}); the next edit replaces it.`;
    }
    this.lastWritten = text;
    if (!findObject(this.doc, this.selected)) this.selected = this.doc.objects[0]?.id ?? null;
    this.frame = Math.min(this.frame, this.doc.num_frames - 1);
    this.sync();
    this.refreshControls();
    this.requestRender();
  }

  /** Follow width/height/num_frames edits on the node: the motion is resampled exactly as Python would. */
  sync() {
    if (this.stateWidget && this.stateWidget.value !== this.lastWritten) return this.reload();
    const p = this.params();
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

  setFrame(f) {
    this.frame = Math.max(0, Math.min(this.doc.num_frames - 1, Math.round(f)));
    this.refreshControls();
    this.requestRender();
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

  // --------------------------------------------------------------------------------------------- background
  /** Per-frame background URLs (a single URL is used for every frame). */
  setBackground(urls) {
    this.background = urls.map((url) => {
      const img = new Image();
      img.onload = () => { this.refreshControls(); this.requestRender(); };
      img.src = url;
      return img;
    });
    this.requestRender();
  }

  backgroundFor(frame) {
    if (!this.background.length) return null;
    const img = this.background[Math.min(frame, this.background.length - 1)];
    if (img.complete && img.naturalWidth) return img;
    return this.background.find((i) => i.complete && i.naturalWidth) ?? null; // still loading: any frame will do
  }

  async backgroundFromFile(file) {
    this.setBackground([await readFile(file, "dataURL")]);
    this.status(`background: ${file.name} (not saved in the workflow; connect an image to keep it)`);
  }

  // --------------------------------------------------------------------------------------------- DOM
  build() {
    const btn = (text, title, onclick) => h("button", { textContent: text, title, onclick });
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
    this.visibleButton = btn("visible", "Visible at this frame (H): toggling keys an appear/disappear", () =>
      this.toggleVisible());
    this.undoButton = btn("↶", "Undo (Ctrl+Z)", () => this.doUndo());
    this.redoButton = btn("↷", "Redo (Ctrl+Shift+Z)", () => this.doRedo());
    this.fileInput = h("input", { type: "file", accept: ".json,.txt,.csv", style: { display: "none" },
      onchange: () => { if (this.fileInput.files[0]) this.importFile(this.fileInput.files[0]); this.fileInput.value = ""; } });
    this.exportSelect = h("select", { title: "Export", onchange: () => {
      this.exportAs(this.exportSelect.value);
      this.exportSelect.value = "";
    } }, [["", "Export…"], ["json", "tracklets JSON"], ["mot", "MOT gt.txt"], ["tracks", "core TRACKS JSON"]]
      .map(([value, textContent]) => h("option", { value, textContent })));

    this.canvas = h("canvas");
    this.warning = h("div", { className: "td-warning" });
    this.keySink = makeKeySink();
    this.stage = h("div", { className: "td-stage" }, [this.canvas, this.warning, this.keySink]);

    this.numInputs = ["x1", "y1", "x2", "y2"].map((name) => h("input", { type: "number", step: "1", title: name,
      placeholder: name, onchange: () => this.numericEdit() }));
    this.statusText = h("span", { className: "td-status" });
    this.sizeButton = btn("use image size", "Set width/height to the background's size (boxes are rescaled)",
      () => this.useImageSize());

    this.slider = h("input", { type: "range", min: "0", step: "1", title: "Frame",
      oninput: () => this.setFrame(Number(this.slider.value)) });
    this.frameLabel = h("span", { style: { minWidth: "52px", textAlign: "right" } });
    this.playButton = btn("play", "Play / pause (Space)", () => this.togglePlay());
    this.strip = h("canvas", { className: "td-strip", title: "Keyframes of the selected object (click to seek)" });

    this.root = h("div", { className: "td-editor", tabIndex: 0, "data-td-editor": "tracklets" }, [
      h("div", { className: "td-row" }, [this.objectSelect, btn("+ object", "New object (N), then draw its box",
        () => this.newObject()), btn("delete", "Delete the object (Shift+Delete)", () => this.deleteSelected()),
      this.labelInput, this.colorInput, this.interpSelect, this.visibleButton]),
      this.stage,
      h("div", { className: "td-row" }, [...this.numInputs, btn("key", "Keyframe here (K)", () => this.keyHere()),
        btn("unkey", "Delete this keyframe (Delete)", () => this.deleteKeyframeHere()), this.undoButton,
        this.redoButton, btn("import", "Import tracklets JSON, MOT gt.txt or core TRACKS JSON", () =>
          this.fileInput.click()), this.exportSelect, this.fileInput]),
      h("div", { className: "td-row" }, [btn("◀", "Previous frame (←); Shift: previous keyframe", () => this.step(-1)),
        this.playButton, btn("▶", "Next frame (→); Shift: next keyframe", () => this.step(1)), this.slider,
        this.frameLabel]),
      this.strip,
      h("div", { className: "td-row" }, [this.statusText, this.sizeButton]),
    ]);

    this.listen(this.stage);
    this.strip.addEventListener("pointerdown", (e) => this.onStrip(e, true));
    this.strip.addEventListener("pointermove", (e) => { if (e.buttons & 1) this.onStrip(e, false); });
    this.root.addEventListener("paste", (e) => this.onPaste(e));
    this.root.addEventListener("drop", (e) => this.onDrop(e));
  }

  status(text, isError = false) {
    this.statusText.textContent = text;
    this.statusText.style.color = isError ? "#ff6b6b" : "";
  }

  /** Bring every control in line with the document (after any edit, selection or frame change). */
  refreshControls() {
    const o = this.obj;
    const names = this.doc.objects.map((x) => [String(x.id),
      `${x.id}${x.label ? " · " + x.label : ""}${x.keyframes.length ? "" : " (no box)"}`]);
    const signature = JSON.stringify(names);
    if (signature !== this.listSignature) { // rebuilding the list on every drag step would be wasted work
      this.listSignature = signature;
      this.objectSelect.replaceChildren(...names.map(([value, textContent]) => h("option", { value, textContent })));
    }
    if (o) this.objectSelect.value = String(o.id);
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
    this.undoButton.disabled = !this.undo.canUndo;
    this.redoButton.disabled = !this.undo.canRedo;
    this.slider.max = String(this.doc.num_frames - 1);
    this.slider.value = String(this.frame);
    this.frameLabel.textContent = `${this.frame} / ${this.doc.num_frames - 1}`;
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
  transform() {
    return fitTransform(this.doc.width, this.doc.height, this.canvas.clientWidth || 1, this.canvas.clientHeight || 1,
      MARGIN);
  }

  /** Client (page) coordinates of an image point: lets tests drive the canvas with real mouse events. */
  imageToClient(x, y) {
    const [vx, vy] = toView(this.transform(), x, y);
    return clientPoint(this.canvas, vx, vy);
  }

  eventImagePoint(e) {
    const [vx, vy] = localPoint(this.canvas, e);
    return toImage(this.transform(), vx, vy);
  }

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
    if (e.button !== 0) return;
    this.keySink.focus({ preventScroll: true });
    this.canvas.setPointerCapture?.(e.pointerId);
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

  onPointerUp(e) {
    const d = this.drag;
    this.drag = null;
    this.canvas.releasePointerCapture?.(e.pointerId);
    if (!d) return;
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
    if (isTextTarget(e)) {
      if (!e.ctrlKey && !e.metaKey) e.stopPropagation(); // typing a label must not delete graph nodes
      return;
    }
    const mod = e.ctrlKey || e.metaKey;
    const k = e.key.toLowerCase();
    const actions = {
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
    const modActions = {
      z: () => (e.shiftKey ? this.doRedo() : this.doUndo()),
      y: () => this.doRedo(),
      c: () => this.copyKeyframe(),
    };
    if (mod && k === "v") { // the paste event that follows does the work (it may carry an image instead), so
      e.stopPropagation(); // no preventDefault here: that would cancel the paste event itself
      return;
    }
    const action = mod ? modActions[k] : e.altKey ? null : actions[k];
    if (!action) return;
    e.preventDefault();
    e.stopPropagation();
    action();
  }

  onPaste(e) {
    if (isTextTarget(e)) return;
    e.stopPropagation();
    const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
    e.preventDefault();
    if (file) this.backgroundFromFile(file);
    else this.pasteKeyframe();
  }

  onDrop(e) {
    e.preventDefault();
    e.stopPropagation();
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    if (file.type.startsWith("image/")) this.backgroundFromFile(file);
    else this.importFile(file);
  }

  // --------------------------------------------------------------------------------------------- drawing
  render() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, hgt = c.clientHeight;
    if (!w || !hgt) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const t = this.transform(), doc = this.doc;
    const [ix, iy] = toView(t, 0, 0), iw = doc.width * t.scale, ih = doc.height * t.scale;

    const bg = this.backgroundFor(this.frame);
    if (bg) ctx.drawImage(bg, ix, iy, iw, ih);
    else {
      ctx.fillStyle = "#303030";
      ctx.fillRect(ix, iy, iw, ih);
      ctx.fillStyle = "#8a8a8a";
      ctx.textAlign = "center";
      ctx.fillText("connect an image, run once, or paste / drop one here", ix + iw / 2, iy + ih / 2);
      ctx.textAlign = "left";
    }
    ctx.strokeStyle = "#888";
    ctx.lineWidth = 1;
    ctx.strokeRect(ix - 0.5, iy - 0.5, iw + 1, ih + 1);

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
  return mountEditor(node, TrackletEditor, "tracklets_json", "tracklet_canvas", "td_tracklet_editor", 420);
}
