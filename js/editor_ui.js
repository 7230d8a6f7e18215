// What the two canvas editors share on the DOM side (no framework: the frontend changes often, plain DOM does not):
// small element helpers, and CanvasEditor, the base of both editors, with the plumbing they have in common (state in
// the hidden STRING widget, parameters from the node's widgets, backgrounds, input, undo, rendering). The pure part of
// that plumbing is in editor_logic.js (tested under node).

import { clampFrame, firstImageFile, intParam, isImageFile, shortcut } from "./editor_logic.js";
import { fitTransform, toImage, toView } from "./geometry.js";
import { UndoStack } from "./undo.js";

/** h("div", {className: "x", onclick}, [children]) -> element. */
export function h(tag, props = {}, children = []) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k.startsWith("data-")) el.setAttribute(k, v);
    else el[k] = v;
  }
  for (const c of [].concat(children)) if (c !== null && c !== undefined) el.append(c);
  return el;
}

/** The margin ComfyUI's frontend keeps above and below a DOM widget's element (BaseDOMWidgetImpl.DEFAULT_MARGIN). */
export const DOM_WIDGET_MARGIN = 10;

/** A toolbar button. */
export function button(text, title, onclick) {
  return h("button", { textContent: text, title, onclick });
}

/** A button showing a glyph (undo, redo, frame steps): drawn larger than text, or it reads as a dot. */
export function iconButton(glyph, title, onclick) {
  return h("button", { className: "td-icon", textContent: glyph, title, "aria-label": title, onclick });
}

/** A small captioned control: "caption [control]" (a <label>, so the caption names the control). */
export function field(caption, ...controls) {
  return h("label", { className: "td-field" }, [h("span", { textContent: caption }), ...controls]);
}

/**
 * Fill a <select> with [value, text] options. With none, or when `selected` is not among them, it shows `placeholder`
 * (a disabled option) rather than an empty box or a stale entry.
 */
export function setOptions(select, options, selected, placeholder) {
  const signature = JSON.stringify([options, placeholder]);
  if (select.dataset.options !== signature) { // rebuilding the list on every drag step would be wasted work
    select.dataset.options = signature;
    select.replaceChildren(h("option", { value: "", textContent: placeholder, disabled: true, hidden: options.length > 0 }),
      ...options.map(([value, textContent, style]) => h("option", { value, textContent, style: style ?? {} })));
  }
  const value = options.some(([v]) => v === selected) ? selected : "";
  select.value = value;
  select.classList.toggle("td-placeholder", value === "");
}

/**
 * Our styles, injected once per document; everything is scoped under .td-editor. Colours come from the ComfyUI
 * frontend's CSS variables (the ones its own DOM widgets use: --comfy-input-bg, --input-text, --border-color,
 * --descrip-text, ...), so the editors follow its theme; the fallbacks are its dark defaults (the harness page has
 * no frontend).
 */
export function injectStyles() {
  if (document.getElementById("td-editor-styles")) return;
  const css = `
.td-editor { --td-bg: var(--comfy-input-bg, #222); --td-fg: var(--input-text, #ddd);
  --td-border: var(--border-color, #4e4e4e); --td-muted: var(--descrip-text, #999);
  --td-on-bg: var(--content-bg, #4e4e4e); --td-on-fg: var(--content-fg, #fff); --td-error: var(--error-text, #f44);
  display: flex; flex-direction: column; gap: 4px; width: 100%; height: 100%; min-height: 0; overflow: hidden;
  box-sizing: border-box; font-size: 12px; line-height: 1.3; color: var(--td-fg); outline: none; }
.td-editor * { box-sizing: border-box; }
.td-row { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; flex: none; }
.td-editor button, .td-editor select, .td-editor input { font: inherit; color: var(--td-fg); background: var(--td-bg);
  border: 1px solid var(--td-border); border-radius: 4px; padding: 1px 6px; height: 22px; margin: 0; }
.td-editor option { color: var(--td-fg); background: var(--td-bg); }
.td-editor select.td-placeholder { color: var(--td-muted); }
.td-editor button { cursor: pointer; }
.td-editor button:hover:not(:disabled), .td-editor select:hover:not(:disabled) { border-color: var(--td-muted); }
.td-editor button:disabled, .td-editor select:disabled, .td-editor input:disabled { opacity: 0.45; cursor: default; }
.td-editor button.td-on { background: var(--td-on-bg); color: var(--td-on-fg); border-color: var(--td-muted); }
.td-editor button.td-icon { font-size: 16px; line-height: 1; min-width: 26px; padding: 0 4px; }
.td-editor input::placeholder { color: var(--td-muted); }
.td-editor input[type=number] { width: 6.5em; padding: 1px 4px; appearance: textfield; -moz-appearance: textfield; }
.td-editor input[type=number]::-webkit-inner-spin-button, .td-editor input[type=number]::-webkit-outer-spin-button {
  -webkit-appearance: none; margin: 0; }
.td-editor input[type=color] { width: 28px; padding: 2px; cursor: pointer; }
.td-editor input[type=color]::-webkit-color-swatch-wrapper { padding: 0; }
.td-editor input[type=color]::-webkit-color-swatch { border: none; border-radius: 2px; }
.td-editor input[type=range] { flex: 1; min-width: 80px; height: 16px; padding: 0; border: none; background: none;
  -webkit-appearance: none; appearance: none; cursor: pointer; }
.td-editor input[type=range]::-webkit-slider-runnable-track { height: 4px; border-radius: 2px; background: var(--td-border); }
.td-editor input[type=range]::-webkit-slider-thumb { -webkit-appearance: none; width: 12px; height: 12px;
  margin-top: -4px; border-radius: 50%; background: var(--td-fg); }
.td-editor input[type=range]::-moz-range-track { height: 4px; border-radius: 2px; background: var(--td-border); }
.td-editor input[type=range]::-moz-range-thumb { width: 12px; height: 12px; border: none; border-radius: 50%;
  background: var(--td-fg); }
.td-editor .td-label { width: 90px; }
.td-field { display: inline-flex; align-items: center; gap: 3px; color: var(--td-muted); }
.td-stage { position: relative; flex: 1 1 0; min-height: 120px; background: var(--comfy-menu-secondary-bg, #292929);
  border: 1px solid var(--td-border); border-radius: 4px; overflow: hidden; }
.td-stage canvas { position: absolute; inset: 0; width: 100%; height: 100%; touch-action: none; }
.td-warning { position: absolute; left: 6px; top: 4px; right: 6px; color: var(--td-error); font-weight: bold;
  text-shadow: 0 0 3px #000, 0 0 3px #000; pointer-events: none; white-space: pre-line; }
.td-hint { position: absolute; left: 6px; right: 6px; bottom: 4px; color: var(--td-muted); font-size: 11px;
  text-align: center; pointer-events: none; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.td-status { color: var(--td-muted); flex: 1; min-width: 120px; overflow: hidden; text-overflow: ellipsis;
  white-space: nowrap; }
.td-keysink { position: absolute; left: 0; top: 0; width: 1px; height: 1px; opacity: 0; padding: 0; border: 0;
  resize: none; pointer-events: none; }
.td-strip { width: 100%; height: 16px; flex: none; display: block; cursor: pointer; touch-action: none;
  border-radius: 4px; }
`;
  document.head.append(h("style", { id: "td-editor-styles", textContent: css }));
}

/** Offer text as a file download (export buttons). */
export function downloadText(text, filename, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function readFile(file, as = "text") {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    if (as === "text") r.readAsText(file);
    else r.readAsDataURL(file);
  });
}

/** Keys typed into our own inputs belong to them, not to the canvas shortcuts (the key sink is not one). */
export function isTextTarget(e) {
  const t = e.target;
  if (t?.classList?.contains("td-keysink")) return false;
  return t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" || t.isContentEditable);
}

/**
 * The element that holds keyboard focus while the user works on the canvas: an invisible <textarea>. ComfyUI's
 * change tracker listens to every keydown on window in the capture phase (before our handlers can stop it) and
 * runs its graph undo on Ctrl+Z unless a text field has focus; focusing a textarea keeps Ctrl+Z ours. It also
 * receives paste events (an image pasted as background).
 */
export function makeKeySink() {
  const sink = h("textarea", { className: "td-keysink", tabIndex: -1, "aria-label": "editor shortcuts",
    spellcheck: false });
  sink.addEventListener("input", () => { sink.value = ""; });
  return sink;
}

/**
 * Pointer position in the element's own CSS pixels. The classic LiteGraph canvas scales DOM widgets with a CSS
 * transform, so the bounding rect (transformed) and offsetWidth (untransformed) differ by the zoom.
 */
export function localPoint(el, e) {
  const r = el.getBoundingClientRect();
  const sx = el.offsetWidth ? r.width / el.offsetWidth : 1;
  const sy = el.offsetHeight ? r.height / el.offsetHeight : 1;
  return [(e.clientX - r.left) / sx, (e.clientY - r.top) / sy];
}

/** Mirror of localPoint: client (page) coordinates of a point given in the element's CSS pixels. */
export function clientPoint(el, x, y) {
  const r = el.getBoundingClientRect();
  const sx = el.offsetWidth ? r.width / el.offsetWidth : 1;
  const sy = el.offsetHeight ? r.height / el.offsetHeight : 1;
  return [r.left + x * sx, r.top + y * sy];
}

/**
 * Hide a state widget in both renderers (LiteGraph reads widget.hidden, the Vue nodes read options.hidden) while it
 * still serialises into the workflow and the API prompt. Older frontends (1.27, ComfyUI 0.3.64) skip a hidden widget
 * when drawing but not when laying the widgets out, which left an empty row above the first visible one: a widget
 * whose computeSize is [0, -4] takes no room there (LiteGraph adds 4 px between rows).
 */
export function hideWidget(widget) {
  if (!widget) return;
  widget.hidden = true;
  widget.options = widget.options ?? {};
  widget.options.hidden = true;
  widget.computeSize = () => [0, -4];
}

/**
 * A DOM widget on the node that is never serialised: the state lives in the declared STRING input instead.
 * `minHeight`: px, or a function giving them (asked at every layout).
 */
export function addCanvasWidget(node, name, type, element, minHeight) {
  const widget = node.addDOMWidget(name, type, element, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: typeof minHeight === "function" ? minHeight : () => minHeight,
    getValue: () => undefined,
    setValue: () => {},
  });
  widget.serialize = false; // LiteGraph's workflow writer reads the widget property, graphToPrompt the option
  return widget;
}

/**
 * The base of the two canvas editors. The state text lives in the node's hidden STRING input (the source of truth,
 * saved in the workflow and the API prompt; the class names it in `static stateInput`); the editor reads it into a
 * working copy (reload), writes it back after each edit (write), and follows changes that reach the widgets without a
 * callback (sync, every half second). Undo/redo keep state snapshots. Rendering is batched through
 * requestAnimationFrame.
 *
 * A subclass sets `static stateInput` and `static canvasWidget` ({name, type, minHeight}: see mountEditor), calls
 * super(node, options) then, after its own fields, this.start(); and provides:
 *   params() the node's parameters; frameCount(); imageSize() [width, height] of the image being edited;
 *   decode(text, params) the working state (throws on bad text), blank(params), adopt(state, params);
 *   followParams(params) (width/height/frame edits on the node); snapshot() the state text; restore(text);
 *   build() the DOM (buildRoot, buildStage, buildUndoButtons, buildFrameSlider, then listen()); refreshControls();
 *   render() (starting with beginRender()); onPointerDown(e), onPointerMove(e), onPointerUp(e, drag);
 *   keyActions(e) and modKeyActions(e) (key -> action; Ctrl/Cmd+Z and +Y are undo/redo already);
 * and optionally onPasteNoImage(e), dropFile(file) for pasted / dropped things that are not images.
 */
export class CanvasEditor {
  /**
   * @param {object} node a LiteGraph node (or a stand-in) with `widgets` (by name) and `addDOMWidget`
   * @param {{margin?: number, undoLimit?: number, backgroundLimit?: number}} options margin: CSS px around the
   *   image in the view; undoLimit: snapshots kept; backgroundLimit: background frames kept (extra URLs are dropped)
   */
  constructor(node, { margin = 16, undoLimit = 200, backgroundLimit = Infinity } = {}) {
    this.node = node;
    this.stateName = this.constructor.stateInput;
    this.stateWidget = this.widget(this.stateName);
    this.undo = new UndoStack(undoLimit);
    this.margin = margin;
    this.backgroundLimit = backgroundLimit;
    this.background = []; // per editor frame: HTMLImageElement (may repeat); empty = none
    this.frame = 0;
    this.drag = null;
    this.error = "";
    this.lastWritten = null;
    this.renderQueued = false;
  }

  /** Build the DOM and read the state; called by the subclass at the end of its constructor. */
  start() {
    injectStyles();
    this.build();
    this.reload();
    // Cheap safety net for changes that reach the widgets without a callback (workflow load, Vue widgets, links).
    this.syncTimer = setInterval(() => this.sync(), 500);
  }

  // --------------------------------------------------------------------------------------------- node widgets
  widget(name) { return this.node.widgets?.find((w) => w.name === name) ?? null; }

  /** An integer parameter from the node's widget `name` (see intParam). */
  intWidget(name, fallback, min = 1) { return intParam(this.widget(name)?.value, fallback, min); }

  /** Set a widget on the node as the user would (its callback runs). */
  setParam(name, value) {
    const w = this.widget(name);
    if (w && w.value !== value) {
      w.value = value;
      w.callback?.(value);
    }
  }

  // --------------------------------------------------------------------------------------------- state in/out
  /** Re-read the state from the state widget (workflow load, undo, text pasted into the hidden input). */
  reload() {
    const text = this.stateWidget?.value ?? "";
    const p = this.params();
    let state;
    try {
      state = this.decode(text, p);
      this.error = "";
    } catch (e) {
      // Keep the text untouched (the user may fix it by hand); edit an empty state meanwhile.
      state = this.blank(p);
      this.error = `${this.stateName} is not valid (${e.message}); the next edit replaces it.`;
    }
    this.adopt(state, p);
    this.lastWritten = text;
    this.sync();
    this.refreshControls();
    this.requestRender();
  }

  /** Reload when the state widget changed behind our back, else follow the node's parameters. */
  sync() {
    if (this.stateWidget && this.stateWidget.value !== this.lastWritten) return this.reload();
    this.followParams(this.params());
  }

  /** Write the state back to the state widget (after every edit) and refresh. */
  write() {
    const text = this.snapshot();
    this.lastWritten = text;
    if (this.stateWidget && this.stateWidget.value !== text) {
      this.stateWidget.value = text;
      this.stateWidget.callback?.(text);
    }
    this.error = "";
    this.node.setDirtyCanvas?.(true, true);
    this.refreshControls();
    this.requestRender();
  }

  /** Record the state before an edit (for undo). */
  checkpoint() { this.undo.push(this.snapshot()); }

  doUndo() { const s = this.undo.undo(this.snapshot()); if (s !== null) this.restore(s); }
  doRedo() { const s = this.undo.redo(this.snapshot()); if (s !== null) this.restore(s); }

  setFrame(f) {
    this.frame = clampFrame(f, this.frameCount());
    this.refreshControls();
    this.requestRender();
  }

  // --------------------------------------------------------------------------------------------- background
  /** Background URLs per frame (a single URL is used for every frame); at most backgroundLimit are kept. */
  setBackground(urls) {
    this.background = urls.slice(0, this.backgroundLimit).map((url) => {
      const img = new Image();
      img.onload = () => { this.refreshControls(); this.requestRender(); };
      img.src = url;
      return img;
    });
    this.requestRender();
  }

  /** The loaded background of a frame; while it loads any loaded frame will do; null when there is none. */
  backgroundFor(frame) {
    if (!this.background.length) return null;
    const img = this.background[Math.min(frame, this.background.length - 1)];
    if (img.complete && img.naturalWidth) return img;
    return this.background.find((i) => i.complete && i.naturalWidth) ?? null;
  }

  /** An image file pasted or dropped on the editor becomes the background (not saved in the workflow). */
  async backgroundFromFile(file) {
    this.setBackground([await readFile(file, "dataURL")]);
  }

  // --------------------------------------------------------------------------------------------- DOM
  /** The editor's root element (focusable; data-td-editor names the editor for tests and styles). */
  buildRoot(kind, rows) {
    this.root = h("div", { className: "td-editor", tabIndex: 0, "data-td-editor": kind }, rows);
    return this.root;
  }

  /**
   * The stage: the canvas, the warning overlay (top), the hint line (bottom, in the margin below the image, where
   * boxes and masks do not cover it) and the key sink.
   */
  buildStage() {
    this.canvas = h("canvas");
    this.warning = h("div", { className: "td-warning" });
    this.hint = h("div", { className: "td-hint" });
    this.keySink = makeKeySink();
    this.stage = h("div", { className: "td-stage" }, [this.canvas, this.warning, this.hint, this.keySink]);
    return this.stage;
  }

  /**
   * The DOM widget's minimum height: `preferred`, or more when the rows have wrapped on a narrow node: then the rows
   * as laid out now, the gaps, the stage's CSS minimum and the frontend's margin above and below the widget (its
   * element gets the widget's height less 2 x DOM_WIDGET_MARGIN). Only a layout at the node's current width counts
   * (the classic canvas gives the element the node's width less the margins): while the element is still being
   * placed it may be laid out at any width, and a node that grew to fit that never shrinks back. Otherwise, and in
   * the Vue renderer (which sizes the element itself), `preferred`.
   */
  minHeight(preferred) {
    const rows = [...this.root.children].filter((el) => el !== this.stage);
    const width = this.node.size?.[0];
    if (!this.root.isConnected || !rows.some((el) => el.offsetHeight) || !width
      || Math.abs(this.root.offsetWidth - (width - 2 * DOM_WIDGET_MARGIN)) > 2) return preferred;
    const style = getComputedStyle(this.root);
    const gaps = (parseFloat(style.rowGap) || 0) * (this.root.children.length - 1);
    const stageMin = parseFloat(getComputedStyle(this.stage).minHeight) || 0;
    const needed = rows.reduce((sum, el) => sum + el.offsetHeight, 0) + gaps + stageMin + 2 * DOM_WIDGET_MARGIN;
    return Math.max(preferred, Math.ceil(needed));
  }

  buildUndoButtons() {
    this.undoButton = iconButton("↶", "Undo (Ctrl+Z)", () => this.doUndo());
    this.redoButton = iconButton("↷", "Redo (Ctrl+Shift+Z)", () => this.doRedo());
    return [this.undoButton, this.redoButton];
  }

  /** The frame slider and its "frame / last" label. */
  buildFrameSlider(title) {
    this.slider = h("input", { type: "range", min: "0", step: "1", title,
      oninput: () => this.setFrame(Number(this.slider.value)) });
    this.frameLabel = h("span", { style: { minWidth: "52px", textAlign: "right" } });
    return [this.slider, this.frameLabel];
  }

  /** The controls every editor has: undo/redo enabled, slider and frame label at the current frame. */
  refreshSharedControls() {
    const n = this.frameCount();
    this.undoButton.disabled = !this.undo.canUndo;
    this.redoButton.disabled = !this.undo.canRedo;
    this.slider.max = String(n - 1);
    this.slider.value = String(this.frame);
    this.frameLabel.textContent = `${this.frame} / ${n - 1}`;
  }

  // --------------------------------------------------------------------------------------------- input
  /** Pointer input on the canvas, keys, paste, drop and focus on the root, redraw when `resizeTarget` resizes. */
  listen(resizeTarget) {
    this.canvas.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.canvas.addEventListener("mousedown", (e) => e.preventDefault()); // keep the focus on the key sink
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.pointerUp(e));
    this.canvas.addEventListener("pointercancel", (e) => this.pointerUp(e));
    this.canvas.addEventListener("pointerleave", (e) => this.onPointerLeave(e));
    // The graph canvas must not see our pointer/key events (it would drag the node, or delete it). The wheel is not
    // ours: the editors do not use it, so it zooms the graph as it does over ComfyUI's own widgets (see onWheel).
    for (const type of ["pointerdown", "contextmenu", "dblclick"]) {
      this.root.addEventListener(type, (e) => e.stopPropagation());
    }
    this.root.addEventListener("wheel", (e) => this.onWheel(e));
    this.root.addEventListener("keydown", (e) => this.onKey(e));
    this.root.addEventListener("focus", () => this.keySink.focus({ preventScroll: true })); // Tab into the editor
    this.root.addEventListener("dragover", (e) => { e.preventDefault(); e.stopPropagation(); });
    this.root.addEventListener("paste", (e) => this.onPaste(e));
    this.root.addEventListener("drop", (e) => this.onDrop(e));
    this.resizeObserver = new ResizeObserver(() => this.requestRender());
    this.resizeObserver.observe(resizeTarget);
    // A narrower node wraps the rows: have the frontend lay the node out again, as minHeight() may have grown.
    let width = 0;
    this.widthObserver = new ResizeObserver(() => {
      if (this.root.offsetWidth === width) return;
      width = this.root.offsetWidth;
      this.node.setDirtyCanvas?.(true, true);
    });
    this.widthObserver.observe(this.root);
  }

  /** Left button only: keys go to the key sink, the canvas keeps the pointer until it is released. */
  pointerDown(e) {
    if (e.button !== 0) return;
    this.keySink.focus({ preventScroll: true });
    this.canvas.setPointerCapture?.(e.pointerId);
    this.onPointerDown(e);
  }

  /** The pointer left the canvas (hover feedback ends); nothing by default. */
  onPointerLeave() {}

  /**
   * The wheel over the editor zooms (or pans) the graph. ComfyUI's DOM widgets sit in a layer beside the graph
   * canvas, not inside it, so a wheel event there never reaches the canvas by itself; its own widgets hand it over.
   * The extension sets `wheelTarget` (() => the graph's canvas element) and the event goes there, once; without one
   * (the harness page) it simply bubbles on.
   */
  onWheel(e) {
    const target = this.wheelTarget?.();
    if (!target) return;
    e.preventDefault();
    e.stopPropagation();
    target.dispatchEvent(new WheelEvent("wheel", { clientX: e.clientX, clientY: e.clientY, screenX: e.screenX,
      screenY: e.screenY, deltaX: e.deltaX, deltaY: e.deltaY, deltaZ: e.deltaZ, deltaMode: e.deltaMode,
      ctrlKey: e.ctrlKey, metaKey: e.metaKey, shiftKey: e.shiftKey, altKey: e.altKey, buttons: e.buttons,
      bubbles: true, cancelable: true, composed: true }));
  }

  /** Ends the drag (this.drag) and hands it to onPointerUp(e, drag); nothing when none was under way. */
  pointerUp(e) {
    const d = this.drag;
    this.drag = null;
    this.canvas.releasePointerCapture?.(e.pointerId);
    if (d) this.onPointerUp(e, d);
  }

  onKey(e) {
    if (isTextTarget(e)) {
      if (!e.ctrlKey && !e.metaKey) e.stopPropagation(); // typing a label must not delete graph nodes
      return;
    }
    const action = shortcut(e, this.keyActions(e), {
      z: () => (e.shiftKey ? this.doRedo() : this.doUndo()),
      y: () => this.doRedo(),
      ...this.modKeyActions(e),
    });
    if (!action) return;
    e.preventDefault();
    e.stopPropagation();
    action();
  }

  modKeyActions() { return {}; }

  /** A pasted image becomes the background; anything else goes to onPasteNoImage (nothing by default). */
  onPaste(e) {
    if (isTextTarget(e)) return;
    const file = firstImageFile(e.clipboardData?.files);
    if (!file) return this.onPasteNoImage(e);
    e.preventDefault();
    e.stopPropagation();
    this.backgroundFromFile(file);
  }

  onPasteNoImage() {}

  /** A dropped image becomes the background; another file goes to dropFile (nothing by default). */
  onDrop(e) {
    e.preventDefault();
    e.stopPropagation();
    const file = e.dataTransfer?.files?.[0];
    if (!file) return;
    if (isImageFile(file)) this.backgroundFromFile(file);
    else this.dropFile(file);
  }

  dropFile() {}

  // --------------------------------------------------------------------------------------------- view
  /** Image -> view transform: the image fitted into the canvas with `margin` CSS px around it. */
  transform() {
    const [w, hgt] = this.imageSize();
    return fitTransform(w, hgt, this.canvas.clientWidth || 1, this.canvas.clientHeight || 1, this.margin);
  }

  /** Client (page) coordinates of an image point: lets tests drive the canvas with real mouse events. */
  imageToClient(x, y) {
    const [vx, vy] = toView(this.transform(), x, y);
    return clientPoint(this.canvas, vx, vy);
  }

  /** The image point under a pointer event. */
  eventImagePoint(e) {
    const [vx, vy] = localPoint(this.canvas, e);
    return toImage(this.transform(), vx, vy);
  }

  requestRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  /**
   * Start a frame: size the canvas to its box (device pixels), clear it, draw this frame's background (or a grey
   * area, with `placeholder` in the hint line below the image) and the image border. null while the canvas has no
   * size; else {ctx, t, ix, iy, iw, ih}: the context, the view transform and the image's rectangle in CSS px.
   */
  beginRender(placeholder = "") {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, hgt = c.clientHeight;
    if (!w || !hgt) return null;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, hgt);
    const t = this.transform(), [width, height] = this.imageSize();
    const [ix, iy] = toView(t, 0, 0), iw = width * t.scale, ih = height * t.scale;
    const bg = this.backgroundFor(this.frame);
    if (bg) ctx.drawImage(bg, ix, iy, iw, ih);
    else {
      ctx.fillStyle = "#3a3a3a";
      ctx.fillRect(ix, iy, iw, ih);
    }
    this.hint.textContent = bg ? "" : placeholder;
    ctx.strokeStyle = "#888";
    ctx.lineWidth = 1;
    ctx.strokeRect(ix - 0.5, iy - 0.5, iw + 1, ih + 1);
    return { ctx, t, ix, iy, iw, ih };
  }

  destroy() {
    clearInterval(this.syncTimer);
    this.resizeObserver.disconnect();
    this.widthObserver.disconnect();
  }
}

/**
 * Mount an editor on a node: hide its state input (Editor.stateInput), add its root as a never-serialised DOM widget
 * (Editor.canvasWidget: name, type, minHeight; added last, so widgets_values keeps its positions), and return it.
 */
export function mountEditor(node, Editor) {
  hideWidget(node.widgets?.find((w) => w.name === Editor.stateInput));
  const editor = new Editor(node);
  const { name, type, minHeight } = Editor.canvasWidget;
  // The element gets the widget's height less the margins: never less than this, so the rows always fit (a Vue node
  // gives its widget no height of its own, and the canvas takes what is left).
  editor.root.style.minHeight = `${minHeight - 2 * DOM_WIDGET_MARGIN}px`;
  editor.domWidget = addCanvasWidget(node, name, type, editor.root, () => editor.minHeight(minHeight));
  return editor;
}
