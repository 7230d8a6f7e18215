// Box interpolation between keyframes, a line-by-line mirror of trackdiffusion/tracklets/interpolation.py.
// Python stays the source of truth (the node re-evaluates the JSON); this copy only draws the preview, so any change
// there must be repeated here (tests/js/interpolation.test.js pins values computed by the Python code).

export const INTERPOLATIONS = ["linear", "hold", "ease-in-out", "catmull-rom"];

// Segment index i (keyframes i, i+1) and local parameter u in [0, 1] for time t; frames strictly increasing.
function segment(frames, t) {
  const n = frames.length;
  if (n === 1) return [0, 0];
  let i = 0; // searchsorted(side="right") - 1, clipped to [0, n - 2]
  while (i < n - 1 && frames[i + 1] <= t) i++;
  i = Math.min(Math.max(i, 0), n - 2);
  const u = Math.min(Math.max((t - frames[i]) / (frames[i + 1] - frames[i]), 0), 1);
  return [i, u];
}

// Catmull-Rom tangent (value per frame) of keyframe k: central difference inside, one-sided at the ends.
function tangent(frames, values, k, d) {
  const last = frames.length - 1;
  if (k === 0) return (values[1][d] - values[0][d]) / (frames[1] - frames[0]);
  if (k === last) return (values[last][d] - values[last - 1][d]) / (frames[last] - frames[last - 1]);
  return (values[k + 1][d] - values[k - 1][d]) / (frames[k + 1] - frames[k - 1]);
}

/**
 * One object's box and visibility at (possibly fractional) time t.
 * @param {number[]} frames keyframe frames, strictly increasing
 * @param {number[][]} boxes [x1, y1, x2, y2] per keyframe
 * @param {boolean[]} visible per keyframe
 * @param {string} mode one of INTERPOLATIONS
 * @returns {{box: number[], visible: boolean}}
 */
export function interpolateBox(frames, boxes, visible, mode, t) {
  const n = frames.length;
  const [i, u] = segment(frames, t);
  let box;
  if (n === 1 || mode === "hold") {
    // "hold" keeps the previous keyframe's box until the next one, reaching it exactly at that frame.
    box = (u >= 1 && n > 1 ? boxes[Math.min(i + 1, n - 1)] : boxes[i]).slice();
  } else if (mode === "catmull-rom" && n > 2) {
    if (u === 0) box = boxes[i].slice();
    else if (u === 1) box = boxes[i + 1].slice();
    else {
      // The centre follows the spline, width/height go linearly: an overshoot never turns a box inside out.
      const centres = boxes.map((b) => [(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]);
      const span = frames[i + 1] - frames[i];
      const u2 = u * u, u3 = u2 * u;
      const h00 = 2 * u3 - 3 * u2 + 1, h10 = u3 - 2 * u2 + u, h01 = -2 * u3 + 3 * u2, h11 = u3 - u2;
      const c = [0, 1].map((d) => h00 * centres[i][d] + h10 * span * tangent(frames, centres, i, d)
        + h01 * centres[i + 1][d] + h11 * span * tangent(frames, centres, i + 1, d));
      const s = [0, 1].map((d) => {
        const a = boxes[i][d + 2] - boxes[i][d], b = boxes[i + 1][d + 2] - boxes[i + 1][d];
        return a + (b - a) * u;
      });
      box = [c[0] - s[0] / 2, c[1] - s[1] / 2, c[0] + s[0] / 2, c[1] + s[1] / 2];
    }
  } else {
    const w = mode === "ease-in-out" ? u * u * (3 - 2 * u) : u;
    // (1-w)a + wb, as in Python: exact at w = 1.
    box = boxes[i].map((a, d) => (1 - w) * a + w * boxes[i + 1][d]);
  }
  // Step visibility: the flag of the last keyframe at or before t; nothing before the first keyframe.
  let last = -1;
  for (let k = 0; k < n && frames[k] <= t; k++) last = k;
  return { box, visible: last >= 0 && visible[last] };
}
