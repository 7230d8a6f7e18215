// The Point Trajectory Editor's state and its TrackGo preview maths (trackdiffusion/trajectories mirrored).
// State JSON (the node's hidden trajectory_json input, read by nodes/editor_nodes.py):
//   {"format": "trackdiffusion.trajectory_editor", "version": 1, "width", "height",
//    "components": [{"label", "mask": {"size": [H, W], "counts": [zeros, ones, zeros, ...]}, "arrow": [[x, y], ...]}]}
// Masks are row-major run lengths starting with a run of zeros (possibly 0): compact for painted blobs, plain JSON,
// no image codec on either side.

export const TRAJECTORY_FORMAT = "trackdiffusion.trajectory_editor";

// trajectories/render.py DEFAULT_PALETTE: the conditioning video's colour per component, so the preview matches.
export const COMPONENT_COLORS = [
  [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255], [255, 128, 0], [128, 0, 255],
  [0, 255, 128], [255, 0, 128], [0, 128, 255], [128, 255, 0], [255, 128, 128], [128, 255, 128], [128, 128, 255],
  [255, 255, 128],
];

export function componentColor(i, alpha = 1) {
  const [r, g, b] = COMPONENT_COLORS[i % COMPONENT_COLORS.length];
  return `rgba(${r},${g},${b},${alpha})`;
}

/** bits: Uint8Array (0 / non-zero) of h*w, row-major -> {size, counts}. */
export function rleEncode(bits, width, height) {
  const counts = [];
  let current = 0, run = 0;
  for (let i = 0; i < width * height; i++) {
    const v = bits[i] ? 1 : 0;
    if (v === current) run++;
    else { counts.push(run); current = v; run = 1; }
  }
  counts.push(run);
  return { size: [height, width], counts };
}

/** {size, counts} -> Uint8Array of h*w (1 inside). Throws when the runs do not fill the size exactly. */
export function rleDecode(rle) {
  const [h, w] = rle.size;
  const bits = new Uint8Array(h * w);
  let pos = 0;
  rle.counts.forEach((n, i) => {
    if (pos + n > h * w) throw new Error("mask runs exceed the mask size");
    if (i % 2 === 1) bits.fill(1, pos, pos + n);
    pos += n;
  });
  if (pos !== h * w) throw new Error(`mask runs cover ${pos} pixels, not ${h}x${w}`);
  return bits;
}

export function emptyState(width, height) {
  return { format: TRAJECTORY_FORMAT, version: 1, width, height, components: [] };
}

export function parseState(text, width, height) {
  if (!text || !text.trim()) return emptyState(width, height);
  const d = JSON.parse(text);
  if (!d || d.format !== TRAJECTORY_FORMAT || !Array.isArray(d.components)) {
    throw new Error(`expected a ${TRAJECTORY_FORMAT} JSON object`);
  }
  return d;
}

// ----------------------------------------------------------------------------------------- TrackGo preview maths
/** TrackGo eq. 10 (trajectories/sampling.py points_per_mask): K = 16 below 10 % area, 64 above 40 %, 160 p between. */
export function pointsPerMask(areaRatio) {
  if (areaRatio < 0.1) return 16;
  if (areaRatio > 0.4) return 64;
  return Math.floor(160 * areaRatio + 0.5);
}

/** Offsets [F][2] along a polyline at constant speed (trajectories/builder.py arc_length_offsets). */
export function arcLengthOffsets(arrow, numFrames) {
  const out = Array.from({ length: numFrames }, () => [0, 0]);
  const cum = [0];
  for (let i = 1; i < arrow.length; i++) {
    cum.push(cum[i - 1] + Math.hypot(arrow[i][0] - arrow[i - 1][0], arrow[i][1] - arrow[i - 1][1]));
  }
  const length = cum[cum.length - 1];
  if (numFrames === 1 || length === 0) return out;
  for (let f = 0; f < numFrames; f++) {
    const t = (length * f) / (numFrames - 1);
    let i = 1;
    while (i < cum.length - 1 && cum[i] < t) i++;
    const seg = cum[i] - cum[i - 1];
    const u = seg > 0 ? Math.min(1, Math.max(0, (t - cum[i - 1]) / seg)) : 1;
    out[f] = [arrow[i - 1][0] + u * (arrow[i][0] - arrow[i - 1][0]) - arrow[0][0],
      arrow[i - 1][1] + u * (arrow[i][1] - arrow[i - 1][1]) - arrow[0][1]];
  }
  out[numFrames - 1] = [arrow[arrow.length - 1][0] - arrow[0][0], arrow[arrow.length - 1][1] - arrow[0][1]];
  return out;
}

// A tiny seeded PRNG (mulberry32): the preview must not jump around on every redraw.
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Preview of a mask's TrackGo points: K (eq. 10) k-means centres of 3K random in-mask pixels, like the Python
 * sampler but with its own random stream, so the exact points come from the node after a run.
 * @returns {number[][]} [[x, y], ...]
 */
export function previewPoints(bits, width, height, seed = 0) {
  const inside = [];
  for (let i = 0; i < bits.length; i++) if (bits[i]) inside.push(i);
  if (!inside.length) return [];
  const k = Math.min(pointsPerMask(inside.length / (width * height)), inside.length);
  const rand = rng(seed + 1);
  const picks = inside.length <= 3 * k ? inside
    : Array.from({ length: 3 * k }, () => inside[Math.floor(rand() * inside.length)]);
  const samples = picks.map((p) => [p % width, Math.floor(p / width)]);
  let centres = samples.slice(0, k).map((p) => p.slice());
  for (let iter = 0; iter < 10; iter++) { // Lloyd iterations; 10 are plenty for a preview
    const sums = centres.map(() => [0, 0, 0]);
    for (const s of samples) {
      let best = 0, bestD = Infinity;
      centres.forEach((c, j) => {
        const d = (c[0] - s[0]) ** 2 + (c[1] - s[1]) ** 2;
        if (d < bestD) { bestD = d; best = j; }
      });
      sums[best][0] += s[0]; sums[best][1] += s[1]; sums[best][2]++;
    }
    centres = centres.map((c, j) => (sums[j][2] ? [sums[j][0] / sums[j][2], sums[j][1] / sums[j][2]] : c));
  }
  return centres;
}
