// Small DOM helpers shared by the two canvas editors (no framework: the frontend changes often, plain DOM does not).

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

/** Our styles, injected once per document; everything is scoped under .td-editor. */
export function injectStyles() {
  if (document.getElementById("td-editor-styles")) return;
  const css = `
.td-editor { display: flex; flex-direction: column; gap: 4px; width: 100%; height: 100%; min-height: 380px;
  box-sizing: border-box; font: 12px/1.3 sans-serif; color: #ddd; outline: none; }
.td-editor * { box-sizing: border-box; }
.td-row { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; }
.td-editor button, .td-editor select, .td-editor input { font: inherit; color: #eee; background: #333;
  border: 1px solid #555; border-radius: 3px; padding: 1px 5px; height: 22px; }
.td-editor button:hover:not(:disabled) { background: #444; }
.td-editor button:disabled { opacity: 0.4; }
.td-editor button.td-on { background: #2d5a88; border-color: #4a8ad0; }
.td-editor input[type=number] { width: 62px; }
.td-editor input[type=color] { width: 28px; padding: 0 1px; }
.td-editor input[type=range] { flex: 1; min-width: 80px; height: 16px; padding: 0; }
.td-editor .td-label { width: 90px; }
.td-stage { position: relative; flex: 1 1 auto; min-height: 200px; background: #1b1b1b; border-radius: 3px;
  overflow: hidden; }
.td-stage canvas { position: absolute; inset: 0; width: 100%; height: 100%; touch-action: none; }
.td-warning { position: absolute; left: 6px; top: 4px; right: 6px; color: #ff6b6b; font-weight: bold;
  text-shadow: 0 0 3px #000, 0 0 3px #000; pointer-events: none; white-space: pre-line; }
.td-status { color: #aaa; flex: 1; min-width: 120px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.td-keysink { position: absolute; left: 0; top: 0; width: 1px; height: 1px; opacity: 0; padding: 0; border: 0;
  resize: none; pointer-events: none; }
.td-strip { width: 100%; height: 16px; display: block; cursor: pointer; touch-action: none; }
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
 * still serialises into the workflow and the API prompt.
 */
export function hideWidget(widget) {
  if (!widget) return;
  widget.hidden = true;
  widget.options = widget.options ?? {};
  widget.options.hidden = true;
}

/** A DOM widget on the node that is never serialised: the state lives in the declared STRING input instead. */
export function addCanvasWidget(node, name, type, element, minHeight) {
  const widget = node.addDOMWidget(name, type, element, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => minHeight,
    getValue: () => undefined,
    setValue: () => {},
  });
  widget.serialize = false; // LiteGraph's workflow writer reads the widget property, graphToPrompt the option
  return widget;
}

/**
 * What the two canvas editors share: the state text written back to the hidden STRING widget (the source of truth),
 * undo/redo by state snapshots, batched rendering, the canvas and root event plumbing, and teardown. A subclass sets
 * node, stateWidget, undo, canvas, root, keySink, syncTimer and provides snapshot() (the state text), restore(text),
 * refreshControls(), render(), onPointerDown/Move/Up(e) and onKey(e).
 */
export class CanvasEditor {
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

  requestRender() {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  /** Pointer input on the canvas, keys and focus on the root, redraw when `resizeTarget` changes size. */
  listen(resizeTarget) {
    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("mousedown", (e) => e.preventDefault()); // keep the focus on the key sink
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("pointercancel", (e) => this.onPointerUp(e));
    // The graph canvas must not see our pointer/wheel/key events (it would drag or zoom the node, or delete it).
    for (const type of ["pointerdown", "wheel", "contextmenu", "dblclick"]) {
      this.root.addEventListener(type, (e) => e.stopPropagation());
    }
    this.root.addEventListener("keydown", (e) => this.onKey(e));
    this.root.addEventListener("focus", () => this.keySink.focus({ preventScroll: true })); // Tab into the editor
    this.root.addEventListener("dragover", (e) => { e.preventDefault(); e.stopPropagation(); });
    this.resizeObserver = new ResizeObserver(() => this.requestRender());
    this.resizeObserver.observe(resizeTarget);
  }

  destroy() {
    clearInterval(this.syncTimer);
    this.resizeObserver.disconnect();
  }
}

/**
 * Mount an editor on a node: hide its state input, add the canvas as a never-serialised DOM widget (added last, so
 * widgets_values keeps its positions), and return the editor.
 */
export function mountEditor(node, Editor, stateName, canvasName, widgetType, minHeight) {
  hideWidget(node.widgets?.find((w) => w.name === stateName));
  const editor = new Editor(node);
  editor.domWidget = addCanvasWidget(node, canvasName, widgetType, editor.root, minHeight);
  return editor;
}
