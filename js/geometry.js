// Box geometry of the editors: hit testing, corner/edge resizing, the image <-> view transform.
// Boxes are [x1, y1, x2, y2] in image (canvas) pixels with x2 > x1, y2 > y1, as in the tracklet JSON.

export const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

/** [x1, y1, x2, y2] with the corners sorted, from two arbitrary corner points. */
export function boxFromPoints(ax, ay, bx, by) {
  return [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)];
}

export function boxWidth(b) { return b[2] - b[0]; }
export function boxHeight(b) { return b[3] - b[1]; }

/** Round to 1/100 px: keeps the JSON short and readable without visible loss. */
export function roundBox(b) { return b.map((v) => Math.round(v * 100) / 100); }

/** True when any part of the box reaches outside the width x height image (Python clamps it and warns). */
export function isOutside(b, width, height) {
  return b[0] < 0 || b[1] < 0 || b[2] > width || b[3] > height;
}

/** True when nothing of the box is left inside the image (Python then hides the object on that frame). */
export function isWhollyOutside(b, width, height) {
  return Math.min(b[2], width) <= Math.max(b[0], 0) || Math.min(b[3], height) <= Math.max(b[1], 0);
}

/** Positions of the 8 resize handles: corners and edge midpoints. */
export function handlePoints(b) {
  const [x1, y1, x2, y2] = b, mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
  return { nw: [x1, y1], n: [mx, y1], ne: [x2, y1], e: [x2, my], se: [x2, y2], s: [mx, y2], sw: [x1, y2], w: [x1, my] };
}

/**
 * What a pointer at (x, y) grabs on box b: a handle name, "move" inside, or null.
 * tol is in image pixels (the caller converts its screen tolerance through the view scale).
 */
export function hitTest(b, x, y, tol) {
  const pts = handlePoints(b);
  for (const h of HANDLES) {
    if (Math.abs(x - pts[h][0]) <= tol && Math.abs(y - pts[h][1]) <= tol) return h;
  }
  return x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3] ? "move" : null;
}

/**
 * The box after dragging `handle` of `start` by (dx, dy) image pixels. Dragging an edge past the opposite one flips
 * the box (like every drawing program) instead of producing an inside-out box; minSize keeps it non-degenerate.
 */
export function dragBox(start, handle, dx, dy, minSize = 1) {
  if (handle === "move") return [start[0] + dx, start[1] + dy, start[2] + dx, start[3] + dy];
  let [x1, y1, x2, y2] = start;
  if (handle.includes("w")) x1 += dx;
  if (handle.includes("e")) x2 += dx;
  if (handle.includes("n")) y1 += dy;
  if (handle.includes("s")) y2 += dy;
  const b = boxFromPoints(x1, y1, x2, y2);
  if (b[2] - b[0] < minSize) b[2] = b[0] + minSize;
  if (b[3] - b[1] < minSize) b[3] = b[1] + minSize;
  return b;
}

/** Cursor CSS for a handle, so the user sees what a drag will do before pressing. */
export function cursorFor(handle) {
  if (!handle) return "crosshair";
  if (handle === "move") return "move";
  return { n: "ns-resize", s: "ns-resize", e: "ew-resize", w: "ew-resize", nw: "nwse-resize", se: "nwse-resize",
    ne: "nesw-resize", sw: "nesw-resize" }[handle];
}

/**
 * The view transform that fits a width x height image into a viewW x viewH element with `margin` CSS pixels
 * around it (the margin is where boxes outside the image stay visible and grabbable).
 * @returns {{scale: number, ox: number, oy: number}} view = image * scale + offset
 */
export function fitTransform(width, height, viewW, viewH, margin) {
  const scale = Math.max(1e-6, Math.min((viewW - 2 * margin) / width, (viewH - 2 * margin) / height));
  return { scale, ox: (viewW - width * scale) / 2, oy: (viewH - height * scale) / 2 };
}

export function toImage(t, vx, vy) { return [(vx - t.ox) / t.scale, (vy - t.oy) / t.scale]; }
export function toView(t, ix, iy) { return [ix * t.scale + t.ox, iy * t.scale + t.oy]; }
