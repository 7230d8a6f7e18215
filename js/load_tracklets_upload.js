// Load Tracklets' upload button, as core loaders have one: a tracklets file (.json, .txt, .csv) picked on the user's
// machine goes into ComfyUI's input folder (subfolder "tracklets", through the same /upload/image route core uploads
// use, which keeps a file of the same name by renaming the new one) and becomes the node's `file` choice. The button
// is never serialised, so saved workflows keep the node's widget values as the Python schema lists them.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

export const UPLOAD_SUBFOLDER = "tracklets";
export const ACCEPT = ".json,.txt,.csv";

/** The `file` value of an upload reply ({name, subfolder}): the name relative to the input folder. */
export function uploadedName(reply) {
  return reply?.subfolder ? `${reply.subfolder}/${reply.name}` : reply?.name;
}

async function upload(file) {
  const body = new FormData();
  body.append("image", file, file.name);
  body.append("subfolder", UPLOAD_SUBFOLDER);
  body.append("type", "input");
  const reply = await api.fetchApi("/upload/image", { method: "POST", body });
  if (reply.status !== 200) throw new Error(`upload refused (${reply.status} ${reply.statusText})`);
  return uploadedName(await reply.json());
}

function choose(widget, name) {
  const values = widget.options?.values;
  if (Array.isArray(values) && !values.includes(name)) values.push(name);
  widget.value = name;
  widget.callback?.(name);
}

app.registerExtension({
  name: "trackdiffusion.LoadTrackletsUpload",
  nodeCreated(node) {
    if (node.comfyClass !== "LoadTracklets") return;
    const fileWidget = node.widgets?.find((w) => w.name === "file");
    if (!fileWidget) return;
    const picker = document.createElement("input");
    Object.assign(picker, { type: "file", accept: ACCEPT });
    picker.style.display = "none";
    document.body.append(picker);
    picker.onchange = async () => {
      const file = picker.files?.[0];
      picker.value = "";
      if (!file) return;
      try {
        choose(fileWidget, await upload(file));
        node.setDirtyCanvas?.(true, true);
      } catch (err) {
        const message = `Load Tracklets: ${err.message}`;
        if (app.extensionManager?.toast) app.extensionManager.toast.add({ severity: "error", summary: message, life: 6000 });
        else console.error(message);
      }
    };
    const button = node.addWidget("button", "upload tracklets file", null, () => picker.click(), { serialize: false });
    button.serialize = false; // LiteGraph's workflow writer reads the widget property, graphToPrompt the option
    const removed = node.onRemoved;
    node.onRemoved = function () {
      picker.remove();
      return removed?.apply(this, arguments);
    };
  },
});
