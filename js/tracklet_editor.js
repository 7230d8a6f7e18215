// ComfyUI extension of the Tracklet Editor and Point Trajectory Editor nodes: mounts the canvases (tracklet_widget.js,
// trajectory_widget.js) and feeds them backgrounds. Works with the classic LiteGraph canvas and the Vue node renderer
// (Nodes 2.0): both show DOM widgets, and the state lives in ordinary hidden widgets that both serialise.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { loadImageRef, viewQuery } from "./editor_logic.js";
import { mountTrackletEditor } from "./tracklet_widget.js";
import { mountTrajectoryEditor } from "./trajectory_widget.js";

const EDITORS = {
  TrackletEditor: { mount: mountTrackletEditor, size: [560, 640] },
  PointTrajectoryEditor: { mount: mountTrajectoryEditor, size: [560, 600] },
};

function viewUrl(ref) {
  return api.apiURL(`/view?${viewQuery(ref)}`);
}

/** The node wired into the editor's `background` input, if any. */
function backgroundSource(node) {
  const slot = node.inputs?.findIndex((i) => i.name === "background") ?? -1;
  return slot >= 0 ? node.getInputNode?.(slot) ?? null : null;
}

/** Before the first run: the image of a LoadImage (or any node showing a preview) wired into `background`. */
function upstreamImageUrl(node) {
  const src = backgroundSource(node);
  if (!src) return null;
  const imageWidget = src.widgets?.find((w) => w.name === "image");
  if (imageWidget && typeof imageWidget.value === "string" && imageWidget.value) {
    return viewUrl(loadImageRef(imageWidget.value));
  }
  return src.imgs?.[0]?.src ?? null;
}

/** Show the upstream picture if it changed. While a workflow loads (node.tdLoading), frames saved from the last run
 * win (they may be a video): the upstream picture is only remembered. */
function applyUpstream(node) {
  const url = upstreamImageUrl(node);
  if (url && url !== node.tdUpstreamUrl) {
    node.tdUpstreamUrl = url;
    if (!(node.tdLoading && node.properties?.td_background?.length)) node.tdEditor?.setBackground([url]);
  }
  node.tdLoading = false;
}

/**
 * Follow the upstream image: on wiring, on workflow load, and when the user picks another file in LoadImage (its
 * widget's callback, wrapped here). Some renderers change the value without calling that wrapped callback (the Vue
 * nodes of frontend 1.35), so a cheap check every half second backs it up.
 */
function watchUpstream(node) {
  const apply = () => {
    applyUpstream(node);
    const w = backgroundSource(node)?.widgets?.find((x) => x.name === "image");
    if (w && !w.tdWatched) {
      w.tdWatched = true;
      const previous = w.callback;
      w.callback = function (...args) {
        const r = previous?.apply(this, args);
        setTimeout(apply, 0);
        return r;
      };
    }
  };
  setTimeout(apply, 0);
  node.tdUpstreamTimer ??= setInterval(() => { if (!node.tdLoading) applyUpstream(node); }, 500);
}

function chain(proto, name, fn) {
  const previous = proto[name];
  proto[name] = function (...args) {
    const r = previous?.apply(this, args);
    fn.apply(this, args);
    return r;
  };
}

app.registerExtension({
  name: "TrackDiffusion.CanvasEditors",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const spec = EDITORS[nodeData.name];
    if (!spec) return;
    chain(nodeType.prototype, "onNodeCreated", function () {
      this.tdEditor = spec.mount(this);
      // The wheel over the editor zooms the graph, as over ComfyUI's own widgets (see CanvasEditor.onWheel).
      this.tdEditor.wheelTarget = () => app.canvas?.canvas ?? null;
      this.setSize([Math.max(this.size[0], spec.size[0]), Math.max(this.size[1], spec.size[1])]);
      watchUpstream(this);
    });
    chain(nodeType.prototype, "onConfigure", function () {
      // Widget values are restored by now: re-read the state, then the saved background (temp files from a run).
      this.tdLoading = true;
      this.tdEditor?.reload();
      const saved = this.properties?.td_background;
      if (Array.isArray(saved) && saved.length) this.tdEditor?.setBackground(saved.map(viewUrl));
      watchUpstream(this);
    });
    chain(nodeType.prototype, "onExecuted", function (output) {
      if (output?.td_background?.length) {
        this.properties = this.properties ?? {};
        this.properties.td_background = output.td_background;
        this.tdEditor?.setBackground(output.td_background.map(viewUrl));
      }
      this.tdEditor?.onExecuted?.(output);
    });
    chain(nodeType.prototype, "onConnectionsChange", function () { watchUpstream(this); });
    chain(nodeType.prototype, "onRemoved", function () {
      clearInterval(this.tdUpstreamTimer);
      this.tdUpstreamTimer = undefined;
      this.tdEditor?.destroy();
    });
  },
});
