// The Tracklet Editor's document: our tracklet JSON v1 (data/tracklets/model.py), edited in place.
// The node parses the same JSON with trackdiffusion.data.tracklets.load, so everything here mirrors the Python side:
// key order of to_dict, resample(), the MOT and core TRACKS readers/writers, the out-of-canvas warnings.

import { interpolateBox, INTERPOLATIONS } from "./interpolation_preview.js";

export const FORMAT_NAME = "trackdiffusion.tracklets";
export const FORMAT_VERSION = 1;
export { INTERPOLATIONS };

// Same palette as trackdiffusion.data.tracklets.model.PALETTE: object i without a colour gets entry i % 20.
export const PALETTE = [
  "#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe",
  "#008080", "#e6beff", "#9a6324", "#fffac8", "#800000", "#aaffc3", "#808000", "#ffd8b1", "#000075", "#808080",
];

export const MOT_CLASSES = {
  1: "pedestrian", 2: "person on vehicle", 3: "car", 4: "bicycle", 5: "motorbike", 6: "non motorized vehicle",
  7: "static person", 8: "distractor", 9: "occluder", 10: "occluder on the ground", 11: "occluder full",
  12: "reflection",
};

export function emptyDoc(width = 1024, height = 576, numFrames = 14, fps = 8) {
  return { format: FORMAT_NAME, version: FORMAT_VERSION, width, height, num_frames: numFrames, fps, objects: [] };
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const fail = (msg) => { throw new Error(msg); };

/**
 * Our JSON text (or parsed object) -> a normalised document. Empty text is an empty document of the given size.
 * Structural errors throw (the editor shows them and keeps the text); boxes outside the canvas are allowed.
 */
export function parseDoc(textOrObj, defaults = {}) {
  const { width = 1024, height = 576, numFrames = 14 } = defaults;
  if (textOrObj === undefined || textOrObj === null || (typeof textOrObj === "string" && !textOrObj.trim())) {
    return emptyDoc(width, height, numFrames);
  }
  const d = typeof textOrObj === "string" ? JSON.parse(textOrObj) : textOrObj;
  if (!d || typeof d !== "object" || Array.isArray(d)) fail("expected a JSON object");
  if ((d.format ?? FORMAT_NAME) !== FORMAT_NAME) fail(`unknown format ${JSON.stringify(d.format)}`);
  if (d.version !== FORMAT_VERSION) fail(`unsupported version ${JSON.stringify(d.version)}`);
  for (const k of ["width", "height", "num_frames"]) {
    if (!Number.isInteger(d[k]) || d[k] < 1) fail(`${k} must be a positive integer`);
  }
  if (!Array.isArray(d.objects)) fail('"objects" must be a list');
  const seen = new Set();
  const objects = d.objects.map((o, index) => {
    if (!Number.isInteger(o?.id) || o.id < 0) fail(`object #${index}: id must be a non-negative integer`);
    if (seen.has(o.id)) fail(`duplicate object id ${o.id}`);
    seen.add(o.id);
    const interpolation = o.interpolation ?? "linear";
    if (!INTERPOLATIONS.includes(interpolation)) fail(`object ${o.id}: unknown interpolation ${interpolation}`);
    if (!Array.isArray(o.keyframes)) fail(`object ${o.id}: keyframes must be a list`);
    const keyframes = o.keyframes.map((k) => {
      if (!Number.isInteger(k?.frame) || k.frame < 0 || k.frame >= d.num_frames) {
        fail(`object ${o.id}: keyframe frame ${k?.frame} outside 0..${d.num_frames - 1}`);
      }
      if (!Array.isArray(k.box) || k.box.length !== 4 || !k.box.every(isNum) || k.box[2] <= k.box[0]
          || k.box[3] <= k.box[1]) fail(`object ${o.id}, frame ${k.frame}: bad box ${JSON.stringify(k.box)}`);
      return withMot({ frame: k.frame, box: k.box.slice(), visible: k.visible ?? true }, k);
    }).sort((a, b) => a.frame - b.frame);
    return { id: o.id, label: typeof o.label === "string" ? o.label : "", color: validColor(o.color) ?? PALETTE[index % 20],
      interpolation, keyframes };
  });
  return { format: FORMAT_NAME, version: FORMAT_VERSION, width: d.width, height: d.height, num_frames: d.num_frames,
    fps: isNum(d.fps) && d.fps > 0 ? d.fps : 8, objects };
}

/** A keyframe's MOT columns (read from a MOT file, written back by the MOT writer) travel with it unchanged. */
function withMot(keyframe, source) {
  if (Array.isArray(source?.mot) && source.mot.every(isNum)) keyframe.mot = source.mot.slice();
  return keyframe;
}

function validColor(c) {
  return typeof c === "string" && /^#[0-9a-fA-F]{6}$/.test(c) ? c.toLowerCase() : null;
}

/**
 * The JSON the node reads, key for key as Tracklets.to_dict() writes it. Objects without keyframes are left out:
 * Python requires at least one, and an object with no box has nothing to say yet.
 */
export function serializeDoc(doc, indent = 0) {
  const out = {
    format: FORMAT_NAME, version: FORMAT_VERSION, width: doc.width, height: doc.height, num_frames: doc.num_frames,
    fps: doc.fps,
    objects: doc.objects.filter((o) => o.keyframes.length).map((o) => ({
      id: o.id, label: o.label, color: o.color, interpolation: o.interpolation,
      keyframes: o.keyframes.map((k) => withMot({ frame: k.frame, box: k.box.slice(), visible: k.visible }, k)),
    })),
  };
  return JSON.stringify(out, null, indent || undefined);
}

// ------------------------------------------------------------------------------------------------ object edits
export function findObject(doc, id) { return doc.objects.find((o) => o.id === id) ?? null; }

/** A new object with the next free id (ids start at 1) and the first palette colour not yet in use. */
export function addObject(doc, label = "") {
  const id = doc.objects.reduce((m, o) => Math.max(m, o.id), 0) + 1;
  const used = new Set(doc.objects.map((o) => o.color));
  const color = PALETTE.find((c) => !used.has(c)) ?? PALETTE[doc.objects.length % PALETTE.length];
  const obj = { id, label, color, interpolation: "linear", keyframes: [] };
  doc.objects.push(obj);
  return obj;
}

export function deleteObject(doc, id) {
  doc.objects = doc.objects.filter((o) => o.id !== id);
}

export function keyframeAt(obj, frame) { return obj.keyframes.find((k) => k.frame === frame) ?? null; }

/** Insert or replace the keyframe at `frame`, keeping keyframes sorted (Python rejects two on one frame). */
export function setKeyframe(obj, frame, box, visible = true) {
  const existing = keyframeAt(obj, frame);
  if (existing) {
    existing.box = box.slice();
    existing.visible = visible;
    return existing;
  }
  const kf = { frame, box: box.slice(), visible };
  obj.keyframes.push(kf);
  obj.keyframes.sort((a, b) => a.frame - b.frame);
  return kf;
}

export function deleteKeyframe(obj, frame) {
  obj.keyframes = obj.keyframes.filter((k) => k.frame !== frame);
}

/** Box and visibility of an object at time t (null before its first keyframe is drawn). */
export function evaluate(obj, t) {
  if (!obj.keyframes.length) return null;
  return interpolateBox(obj.keyframes.map((k) => k.frame), obj.keyframes.map((k) => k.box),
    obj.keyframes.map((k) => k.visible), obj.interpolation, t);
}

/** Keyframe frames of an object before/after `frame` (for previous/next-keyframe navigation). */
export function neighbourKeyframe(obj, frame, direction) {
  const frames = obj.keyframes.map((k) => k.frame);
  return direction > 0 ? (frames.find((f) => f > frame) ?? null) : (frames.reverse().find((f) => f < frame) ?? null);
}

/** The warnings Python's parser records: keyframe boxes reaching outside the canvas (clamped on run). */
export function outsideWarnings(doc) {
  const out = [];
  for (const o of doc.objects) {
    for (const k of o.keyframes) {
      const [x1, y1, x2, y2] = k.box;
      if (x1 < 0 || y1 < 0 || x2 > doc.width || y2 > doc.height) {
        out.push({ id: o.id, frame: k.frame, text: `object ${o.id}, frame ${k.frame}: box reaches outside the `
          + `${doc.width}x${doc.height} canvas; clamped to the canvas.` });
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------ resampling
// Python's round() rounds halves to even; resample() must map frames exactly as Python would.
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function resampleTimes(fSrc, fOut) {
  if (fOut === 1 || fSrc === 1) return new Array(fSrc === 1 ? fOut : 1).fill(0);
  return Array.from({ length: fOut }, (_, i) => i * ((fSrc - 1) / (fOut - 1)));
}

/** Tracklets.resample(): the same motion on another frame count and/or canvas size (mirrors model.py). */
export function resampleDoc(doc, numFrames = doc.num_frames, width = doc.width, height = doc.height) {
  const sx = width / doc.width, sy = height / doc.height;
  const scale = (b) => [b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy];
  const timeScale = doc.num_frames > 1 ? (numFrames - 1) / (doc.num_frames - 1) : 0;
  const objects = doc.objects.map((o) => {
    const mapped = o.keyframes.map((k) => roundHalfEven(k.frame * timeScale));
    if (numFrames > 1 && new Set(mapped).size === mapped.length) {
      return { ...o, keyframes: o.keyframes.map((k, i) => withMot({ frame: mapped[i], box: scale(k.box),
        visible: k.visible }, k)) };
    }
    if (!o.keyframes.length) return { ...o, keyframes: [] };
    // Keyframes would collide (down-sampling): re-key every new frame from the exact interpolated path.
    const times = resampleTimes(doc.num_frames, numFrames);
    const keyframes = [];
    for (let f = 0; f < numFrames; f++) {
      const { box, visible } = evaluate(o, times[Math.min(f, times.length - 1)]);
      keyframes.push({ frame: f, box: scale(box), visible });
    }
    return { ...o, keyframes, interpolation: "linear" };
  });
  const fps = timeScale > 0 ? doc.fps * timeScale : doc.fps;
  return { ...doc, width, height, num_frames: numFrames, fps, objects };
}

// ------------------------------------------------------------------------------------------------ dense views
/** Per-frame boxes of every object, ids ascending, unclamped: [{id, label, boxes: [[x1..]], visible: [bool]}]. */
export function denseTracks(doc) {
  return doc.objects.filter((o) => o.keyframes.length).sort((a, b) => a.id - b.id).map((o) => {
    const boxes = [], visible = [];
    for (let f = 0; f < doc.num_frames; f++) {
      const e = evaluate(o, f);
      boxes.push(e.box);
      visible.push(e.visible);
    }
    return { id: o.id, label: o.label, boxes, visible };
  });
}

// Shortest text that reads back to the same number, without ".0" (formats/common.py fmt_number).
const fmtNumber = (v) => String(v);
// high - low rounded to 15 significant digits of the coordinates (formats/mot.py _extent): a width that was read
// comes back as written
const fmtExtent = (low, high) =>
  String(Number((high - low).toFixed(Math.max(0, 14 - Math.floor(Math.log10(Math.max(Math.abs(low), Math.abs(high), 1)))))));

/** MOT gt.txt text (formats/mot.py write_mot): visible (object, frame) rows, 1-based frames, unclamped boxes. */
export function toMOT(doc) {
  const classIds = Object.fromEntries(Object.entries(MOT_CLASSES).map(([k, v]) => [v, Number(k)]));
  const tracks = denseTracks(doc);
  const kept = new Map();  // the MOT columns a keyframe brought from a MOT file, written back as they were
  for (const o of doc.objects) for (const k of o.keyframes) if (k.mot) kept.set(`${o.id}/${k.frame}`, k.mot);
  const lines = [];
  for (let f = 0; f < doc.num_frames; f++) {
    for (const t of tracks) {
      if (!t.visible[f]) continue;
      const [x1, y1, x2, y2] = t.boxes[f];
      const mot = kept.get(`${t.id}/${f}`);
      const rest = mot ? mot.map(fmtNumber) : [1, classIds[t.label] ?? -1, 1];
      lines.push([f + 1, t.id, fmtNumber(x1), fmtNumber(y1), fmtExtent(x1, x2), fmtExtent(y1, y2), ...rest]
        .join(","));
    }
  }
  return lines.length ? lines.join("\n") + "\n" : "";
}

/** Core TRACKS as JSON (formats/tracks.py write_tracks): box centres [F][N][2] and visibility [F][N]. */
export function toTracks(doc) {
  const tracks = denseTracks(doc);
  const path = [], vis = [];
  for (let f = 0; f < doc.num_frames; f++) {
    path.push(tracks.map((t) => [(t.boxes[f][0] + t.boxes[f][2]) / 2, (t.boxes[f][1] + t.boxes[f][3]) / 2]));
    vis.push(tracks.map((t) => t.visible[f]));
  }
  return { track_path: path, track_visibility: vis };
}

// formats/common.py keyframes_from_presence: every present frame a visible keyframe, the first absent frame after a
// present one a hidden keyframe holding the last box (a disappearance is a visibility gap).
function keyframesFromPresence(boxes, present, mot = null) {
  const kfs = [];
  let last = null;
  for (let f = 0; f < present.length; f++) {
    if (present[f]) {
      last = boxes[f].slice();
      kfs.push({ frame: f, box: last, visible: true });
      if (mot?.has(f)) kfs[kfs.length - 1].mot = mot.get(f);
    } else if (last && kfs[kfs.length - 1].visible) {
      kfs.push({ frame: f, box: last.slice(), visible: false });
    }
  }
  return kfs;
}

function docFromObjects(width, height, numFrames, fps, objects) {
  objects.sort((a, b) => a.id - b.id);
  objects.forEach((o, i) => { o.color ??= PALETTE[i % 20]; o.interpolation ??= "linear"; });
  return { format: FORMAT_NAME, version: FORMAT_VERSION, width, height, num_frames: numFrames, fps, objects };
}

/** MOT text -> document (formats/mot.py read_mot); numFrames defaults to the last frame in the file. */
export function fromMOT(text, width, height, numFrames = null, fps = 8) {
  const rows = new Map(), classes = new Map(), extras = new Map();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const cols = line.split(/\s*,\s*|\s+/).filter((c) => c !== "");
    if (cols.length < 6) fail(`MOT line ${i + 1}: needs at least 6 columns (frame, id, left, top, width, height)`);
    if (cols.length > 22) fail(`MOT line ${i + 1}: ${cols.length} columns; at most 22 are read`);
    const nums = cols.map(Number);
    const [frame, tid, left, top, w, h] = nums;
    if (nums.some((v) => !Number.isFinite(v))) fail(`MOT line ${i + 1}: not a number`);
    if (!Number.isInteger(frame) || frame < 1) fail(`MOT line ${i + 1}: frame ${cols[0]} is not 1-based`);
    if (!Number.isInteger(tid) || tid < 0) fail(`MOT line ${i + 1}: track id ${cols[1]} must be a non-negative integer`);
    if (w <= 0 || h <= 0) fail(`MOT line ${i + 1}: box width/height must be positive`);
    if (!rows.has(tid)) rows.set(tid, new Map());
    if (rows.get(tid).has(frame - 1)) fail(`MOT line ${i + 1}: track ${tid} appears twice in frame ${frame}`);
    rows.get(tid).set(frame - 1, [left, top, left + w, top + h]);
    // the columns after the box (also none) travel with the keyframe and are written back (formats/mot.py)
    if (!extras.has(tid)) extras.set(tid, new Map());
    extras.get(tid).set(frame - 1, nums.slice(6));
    if (nums.length >= 8 && Number.isInteger(nums[7]) && !classes.has(tid)) classes.set(tid, nums[7]);
  });
  if (!rows.size) fail("the MOT text has no tracks");
  const lastFrame = Math.max(...[...rows.values()].flatMap((m) => [...m.keys()])) + 1;
  const f = numFrames ?? lastFrame;
  if (lastFrame > f) fail(`MOT frame ${lastFrame} is beyond num_frames ${f}`);
  const objects = [...rows.entries()].map(([tid, per]) => {
    const boxes = [], present = [];
    for (let i = 0; i < f; i++) { boxes.push(per.get(i) ?? [0, 0, 0, 0]); present.push(per.has(i)); }
    const cid = classes.get(tid);
    const label = cid === undefined || cid < 1 ? "" : (MOT_CLASSES[cid] ?? `class ${cid}`);
    return { id: tid, label, keyframes: keyframesFromPresence(boxes, present, extras.get(tid)) };
  });
  return docFromObjects(width, height, f, fps, objects);
}

/** Core TRACKS JSON -> document (formats/tracks.py read_tracks): a box of boxSize centred on each point. */
export function fromTracks(data, width, height, boxSize = 64, fps = 8) {
  let path = data?.track_path;
  if (!Array.isArray(path)) fail('TRACKS JSON needs "track_path" [frames][tracks][2]');
  if (path.length === 1 && Array.isArray(path[0]?.[0]?.[0])) path = path[0]; // WanMove's leading batch axis
  let vis = data.track_visibility ?? null;
  if (vis && vis.length === 1 && Array.isArray(vis[0]?.[0])) vis = vis[0];
  const nFrames = path.length, nTracks = path[0]?.length ?? 0;
  if (!nFrames || !nTracks) fail("track_path is empty");
  const half = boxSize / 2;
  const objects = [];
  for (let n = 0; n < nTracks; n++) {
    const boxes = [], present = [];
    for (let f = 0; f < nFrames; f++) {
      const p = path[f]?.[n];
      if (!Array.isArray(p) || p.length !== 2 || !p.every(isNum)) fail(`track_path[${f}][${n}] is not [x, y]`);
      boxes.push([p[0] - half, p[1] - half, p[0] + half, p[1] + half]);
      present.push(vis ? Number(vis[f]?.[n]) > 0.5 : true);
    }
    if (present.some(Boolean)) objects.push({ id: n, label: "", keyframes: keyframesFromPresence(boxes, present) });
  }
  return docFromObjects(width, height, nFrames, fps, objects);
}

/**
 * Any supported text -> document: our JSON, core TRACKS JSON, or MOT text. MOT and TRACKS carry no canvas size,
 * so they take the editor's current one.
 */
export function importText(text, current) {
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    const data = JSON.parse(trimmed);
    if ("track_path" in data) return fromTracks(data, current.width, current.height, 64, current.fps);
    return parseDoc(data);
  }
  return fromMOT(trimmed, current.width, current.height, null, current.fps);
}
