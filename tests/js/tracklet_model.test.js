import assert from "node:assert/strict";
import { test } from "node:test";
import { addObject, deleteKeyframe, deleteObject, emptyDoc, evaluate, fromMOT, fromTracks, importText, keyframeAt,
  neighbourKeyframe, outsideWarnings, parseDoc, resampleDoc, roundHalfEven, serializeDoc, setKeyframe, toMOT,
  toTracks } from "../../js/tracklet_model.js";
import { assertClose, REF } from "./reference.js";

test("serialisation writes exactly Tracklets.to_dict()", () => {
  const doc = parseDoc(JSON.stringify(REF.doc));
  assertClose(assert, JSON.parse(serializeDoc(doc)), REF.to_dict);
  // Round trip through text is stable.
  assert.equal(serializeDoc(parseDoc(serializeDoc(doc))), serializeDoc(doc));
});

test("empty text is an empty document of the node's size; structural errors throw", () => {
  assert.deepEqual(parseDoc("", { width: 64, height: 32, numFrames: 3 }), emptyDoc(64, 32, 3));
  assert.throws(() => parseDoc('{"version": 2, "width": 1, "height": 1, "num_frames": 1, "objects": []}'), /version/);
  const bad = { ...REF.doc, objects: [{ id: 1, keyframes: [{ frame: 99, box: [0, 0, 1, 1] }] }] };
  assert.throws(() => parseDoc(bad), /outside 0\.\.11/);
  const inside_out = { ...REF.doc, objects: [{ id: 1, keyframes: [{ frame: 0, box: [5, 0, 1, 1] }] }] };
  assert.throws(() => parseDoc(inside_out), /bad box/);
});

test("objects: ids, colours, keyframes kept sorted and unique, empty objects not saved", () => {
  const doc = emptyDoc(100, 100, 10);
  const a = addObject(doc, "car");
  const b = addObject(doc);
  assert.deepEqual([a.id, b.id], [1, 2]);
  assert.notEqual(a.color, b.color);
  setKeyframe(a, 5, [1, 1, 5, 5]);
  setKeyframe(a, 0, [0, 0, 4, 4]);
  setKeyframe(a, 5, [2, 2, 6, 6], false);
  assert.deepEqual(a.keyframes.map((k) => k.frame), [0, 5]);
  assert.deepEqual(keyframeAt(a, 5), { frame: 5, box: [2, 2, 6, 6], visible: false });
  assert.equal(neighbourKeyframe(a, 2, +1), 5);
  assert.equal(neighbourKeyframe(a, 2, -1), 0);
  assert.equal(neighbourKeyframe(a, 5, +1), null);
  const saved = JSON.parse(serializeDoc(doc));
  assert.deepEqual(saved.objects.map((o) => o.id), [1]); // b has no box yet
  assert.deepEqual(evaluate(a, 2.5).box, [1, 1, 5, 5]);
  deleteKeyframe(a, 0);
  assert.deepEqual(a.keyframes.map((k) => k.frame), [5]);
  deleteObject(doc, 1);
  assert.deepEqual(doc.objects.map((o) => o.id), [2]);
  assert.equal(addObject(doc).id, 3);
});

test("resampling mirrors Tracklets.resample() up (keyframes kept) and down (re-keyed)", () => {
  const doc = parseDoc(REF.doc);
  assertClose(assert, JSON.parse(serializeDoc(resampleDoc(doc, 23, 1280, 720))), REF.resampled_up);
  assertClose(assert, JSON.parse(serializeDoc(resampleDoc(doc, 4))), REF.resampled_down);
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4].map(roundHalfEven), [0, 2, 2, -0, 2]);
});

test("MOT and core TRACKS exports equal the Python writers", () => {
  const doc = parseDoc(REF.doc);
  assert.equal(toMOT(doc), REF.mot);
  assertClose(assert, toTracks(doc), REF.tracks, 1e-6); // Python stores float32
});

test("importing MOT and TRACKS keeps the per-frame boxes", () => {
  const doc = parseDoc(REF.doc);
  const mot = fromMOT(REF.mot, 640, 360, 12);
  assert.equal(toMOT(mot), REF.mot);
  assert.deepEqual(mot.objects.map((o) => o.label), ["pedestrian", "car", "bicycle", ""]);
  const viaImport = importText(REF.mot, doc);
  assert.equal(viaImport.num_frames, 12);
  const tracks = fromTracks(toTracks(doc), 640, 360, 10);
  const back = toTracks(tracks);
  assert.deepEqual(back.track_visibility, REF.tracks.track_visibility);
  // Hidden frames hold the last visible position on import, so only visible points must come back.
  REF.tracks.track_visibility.forEach((row, f) => row.forEach((v, n) => {
    if (v) assertClose(assert, back.track_path[f][n], REF.tracks.track_path[f][n], 1e-6, `frame ${f} track ${n}`);
  }));
  assert.equal(importText(JSON.stringify(toTracks(doc)), doc).objects.length, 4);
  assert.equal(importText(serializeDoc(doc), emptyDoc()).objects.length, 4);
  assert.throws(() => fromMOT("1,2,3", 10, 10), /6 columns/);
});

test("boxes reaching outside the canvas give the same warnings as the Python parser", () => {
  const got = outsideWarnings(parseDoc(REF.doc)).map((w) => w.text);
  const want = REF.warnings.map((w) => w.replace(/: box \[[^\]]*\]/, ": box"));
  assert.deepEqual(got, want);
});

test("MOT columns after the box (consider flag, class, visibility; MOT15's world coordinates) survive the editor", () => {
  const text = "1,1,794.2,47.5,71.2,174.8,1,1,0.8\n2,1,795.1,47.1,71.2,174.8,0,7,0.25\n1,2,10,20,30,40,1,-1,-1,-1\n";
  const doc = fromMOT(text, 1920, 1080);
  const again = parseDoc(serializeDoc(doc));
  assert.deepEqual(again.objects[0].keyframes.map((k) => k.mot), [[1, 1, 0.8], [0, 7, 0.25]]);
  const lines = (t) => t.trim().split("\n").sort();
  assert.deepEqual(lines(toMOT(again)), lines(text));
  const bigger = resampleDoc(again, 4, 3840, 2160);  // keyframes kept: so are their columns
  assert.deepEqual(bigger.objects[1].keyframes[0].mot, [1, -1, -1, -1]);
});
