// The pure part of the plumbing the two canvas editors share (editor_ui.js holds the DOM part): reading integer
// parameters from widget values, frame clamping, keyboard shortcut lookup, picking image files, and the image
// references ComfyUI's /view endpoint serves. No DOM here: tests/js/editor_logic.test.js runs it under node.

/** A widget value as a parameter: the integer it holds when that is at least `min`, else `fallback`. */
export function intParam(value, fallback, min = 1) {
  const x = Number(value);
  return Number.isInteger(x) && x >= min ? x : fallback;
}

/** Frame `f` rounded and clamped to 0 .. numFrames - 1. */
export function clampFrame(f, numFrames) {
  return Math.max(0, Math.min(numFrames - 1, Math.round(f)));
}

/**
 * The action a key event selects: from `withMod` when Ctrl or Cmd is held, else from `plain`; keyed by the lower-case
 * key name ("z", "arrowleft", " "). null when the key has no action.
 */
export function shortcut(e, plain, withMod) {
  const table = e.ctrlKey || e.metaKey ? withMod : plain;
  const k = e.key.toLowerCase();
  return Object.hasOwn(table, k) ? table[k] : null;
}

export function isImageFile(file) {
  return typeof file?.type === "string" && file.type.startsWith("image/");
}

/** The first image among pasted or dropped files (a FileList, an array, or nothing); null when there is none. */
export function firstImageFile(files) {
  return [...(files ?? [])].find(isImageFile) ?? null;
}

/** A LoadImage widget value ("name.png", "sub/name.png", "name.png [output]") as a /view reference. */
export function loadImageRef(value) {
  const m = value.match(/^(.*?)(?: \[(input|output|temp)\])?$/);
  const parts = m[1].split("/");
  return { filename: parts.pop(), subfolder: parts.join("/"), type: m[2] ?? "input" };
}

/** The query of ComfyUI's /view for an image reference ({filename, subfolder?, type?}; temp by default). */
export function viewQuery(ref) {
  return String(new URLSearchParams({ filename: ref.filename, subfolder: ref.subfolder ?? "", type: ref.type ?? "temp" }));
}
