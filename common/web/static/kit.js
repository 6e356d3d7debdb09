// Small helpers shared by the shell and the views (served at /static/kit.js).

/** h("div.card", {onclick, "data-x": 1, title}, child, "text", ...) → an element. */
export function h(spec, props = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else if (k === "style" && typeof v === "object") Object.assign(el.style, v);
    else if (k in el && !k.includes("-") && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** The CSS size of an image shown at about `target` px: an integer zoom (crisp pixels) unless that
 * leaves it much smaller than `target`, then an exact fit. */
export function zoomed(width, height, target) {
  const side = Math.max(width, height);
  let zoom = Math.floor(target / side);
  if (zoom < 1 || side * zoom < 0.8 * target) zoom = target / side;
  return { w: Math.round(width * zoom), h: Math.round(height * zoom), zoom };
}

/** An <img> of a view image {src, width, height}, scaled to about `target` px, pixelated. */
export function pixelImage(image, target, alt = "") {
  const { w, h: ht, zoom } = zoomed(image.width, image.height, target);
  return h(zoom >= 1 ? "img.pixelated" : "img.fitted", { src: image.src, alt, width: w, height: ht, draggable: "false" });
}

/** A label map {width, height, data: base64} → Uint8Array of h*w cell ids, row-major. */
export function decodeMap(map) {
  const raw = atob(map.data);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** numpy's packbits of a 0/1 Uint8Array (pixel 0 = the top bit of byte 0), base64. */
export function packBits(mask) {
  const bytes = new Uint8Array(Math.ceil(mask.length / 8));
  for (let i = 0; i < mask.length; i++) if (mask[i]) bytes[i >> 3] |= 0x80 >> (i & 7);
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** The inverse of packBits: `n` 0/1 values. */
export function unpackBits(bits, n) {
  const raw = atob(bits);
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (raw.charCodeAt(i >> 3) >> (7 - (i & 7))) & 1;
  return out;
}

/** A canvas drawn at display resolution over an element of CSS size w×h; returns [canvas, ctx]. */
export function hiDpiCanvas(cls, w, ht) {
  const dpr = window.devicePixelRatio || 1;
  const c = h("canvas." + cls, { width: Math.round(w * dpr), height: Math.round(ht * dpr) });
  c.style.width = w + "px";
  c.style.height = ht + "px";
  const ctx = c.getContext("2d");
  ctx.scale(dpr, dpr);
  return [c, ctx];
}

/** The native pixel under a pointer event on an element showing a w×h image (clamped). */
export function pixelAt(event, el, w, ht) {
  const r = el.getBoundingClientRect();
  const fx = ((event.clientX - r.left) / r.width) * w;
  const fy = ((event.clientY - r.top) / r.height) * ht;
  return { fx, fy, x: Math.min(w - 1, Math.max(0, Math.floor(fx))), y: Math.min(ht - 1, Math.max(0, Math.floor(fy))) };
}

/** Edges between pixels of different ids in a label map, as line segments in CSS px (zoom). */
export function strokeBoundaries(ctx, ids, w, ht, zoom, keep = (a, b) => a !== b) {
  ctx.beginPath();
  for (let y = 0; y < ht; y++) {
    for (let x = 0; x < w; x++) {
      const a = ids[y * w + x];
      if (x + 1 < w && keep(a, ids[y * w + x + 1])) {
        ctx.moveTo((x + 1) * zoom, y * zoom);
        ctx.lineTo((x + 1) * zoom, (y + 1) * zoom);
      }
      if (y + 1 < ht && keep(a, ids[(y + 1) * w + x])) {
        ctx.moveTo(x * zoom, (y + 1) * zoom);
        ctx.lineTo((x + 1) * zoom, (y + 1) * zoom);
      }
    }
  }
}

/** Whether a key event comes with modifiers a view's single-key shortcuts should ignore. */
export const modified = (e) => e.ctrlKey || e.metaKey || e.altKey;

/** Whether the event's target takes typed text (then single-key shortcuts stay off). */
export const typing = (e) => {
  const t = e.target;
  return t && (t.tagName === "TEXTAREA" || (t.tagName === "INPUT" && !["range", "checkbox", "button"].includes(t.type)));
};

/** A view's in-place message (validation hints): set(text) / set("") to clear. */
export function notice(cls = "view-error", role = "alert") {
  const el = h("p." + cls, { role, hidden: true });
  el.set = (text) => {
    el.textContent = text || "";
    el.hidden = !text;
  };
  return el;
}
