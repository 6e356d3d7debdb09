// The `relevance` question: paint which pixels are relevant (green) and, optionally, irrelevant (red).
// The masks live at the image's native resolution; the canvas is scaled up by CSS.
import { h, zoomed, decodeMap, packBits, unpackBits, hiDpiCanvas, pixelAt, strokeBoundaries, modified, typing }
  from "/static/kit.js";

const REL = [34, 197, 94, 165]; // green, alpha
const IRR = [239, 68, 68, 165]; // red

export function render(root, q, api) {
  const v = q.view;
  const [H, W] = v.shape;
  const n = H * W;
  const img = v.item?.image;
  const { w: cw, h: ch, zoom } = zoomed(W, H, 420);
  const cells = v.cells ? decodeMap(v.cells) : null;
  let rel = new Uint8Array(n), irr = new Uint8Array(n);
  if (q.answer?.relevant) rel = unpackBits(q.answer.relevant.bits, n);
  if (q.answer?.irrelevant) irr = unpackBits(q.answer.irrelevant.bits, n);
  const draft = q.answer ? null : api.draft.get(); // painted before a reload
  if (draft?.rel) rel = unpackBits(draft.rel, n);
  if (draft?.irr) irr = unpackBits(draft.irr, n);
  let saving = 0;
  const keepDraft = () => { clearTimeout(saving); saving = setTimeout(() => api.draft.set({ rel: packBits(rel), irr: packBits(irr) }), 250); };
  const undo = [];
  let tool = "relevant", cellMode = false, size = Math.max(1, Math.round(Math.max(H, W) / 14)), hover = null;
  const maxSize = Math.max(1, Math.floor(Math.max(H, W) / 4));

  const paint = h("canvas.paint", { width: W, height: H });
  paint.style.width = cw + "px";
  paint.style.height = ch + "px";
  const [lines, lctx] = hiDpiCanvas("lines", cw, ch);
  const cursor = h("div.brush-cursor", { hidden: true });
  const stage = h("div.paint-stage", { style: { width: cw + "px", height: ch + "px" } },
    img ? h(zoom >= 1 ? "img.pixelated" : "img.fitted", { src: img.src, width: cw, height: ch, alt: "the item", draggable: "false" }) : null,
    paint, lines, cursor);
  const pctx = paint.getContext("2d");
  const frame = pctx.createImageData(W, H);

  const toolBtn = (name, label, key) => h(`button.tool.tool-${name}`, { type: "button", "data-tool": name, title: `key ${key}`,
    onclick: () => setTool(name) }, h("kbd", { text: key }), label);
  const tools = [toolBtn("relevant", "relevant", "1"), toolBtn("irrelevant", "irrelevant", "2"), toolBtn("erase", "erase", "3")];
  const slider = h("input.brush-size", { type: "range", min: "1", max: String(maxSize), value: String(Math.min(size, maxSize)),
    "aria-label": "brush size in pixels", oninput: () => { size = +slider.value; sizeOut.textContent = `${size} px`; } });
  size = +slider.value;
  const sizeOut = h("output.size-out", { text: `${size} px` });
  const cellsBtn = h("button.cells", { type: "button", title: "key c", "aria-pressed": "false", disabled: !cells,
    onclick: () => setCells(!cellMode) }, h("kbd", { text: "c" }), "cells");
  const counts = h("p.counts.muted");
  const submitBtn = h("button.submit.primary", { type: "button", onclick: send }, "Submit ", h("kbd", { text: "Enter" }));

  root.append(h("div.relevance-view", {},
    h("div.paint-col", {}, stage),
    h("div.paint-side", {},
      h("h2", {}, "Which pixels matter", v.label ? h("span", {}, " for ", h("strong", { text: v.label })) : null, "?"),
      h("p.muted", { text: "Paint the relevant part green. Optionally paint what must not matter (e.g. a decoy) red; " +
        "if you paint nothing red, everything that is not green counts as irrelevant." }),
      h("div.toolbar", {}, ...tools),
      h("label.size-row", { title: "keys [ and ]" }, "brush ", slider, sizeOut, h("kbd", { text: "[" }), h("kbd", { text: "]" })),
      h("div.toolbar", {}, cellsBtn,
        h("button.undo", { type: "button", title: "Ctrl+Z", onclick: doUndo }, "undo"),
        h("button.clear", { type: "button", onclick: () => { remember(); rel.fill(0); irr.fill(0); draw(); } }, "clear")),
      counts,
      v.saliency ? h("figure.model-saliency", {},
        h("img.pixelated", { src: v.saliency.src, width: 140, height: Math.round(140 * v.saliency.height / v.saliency.width),
          alt: "where the model looks now" }),
        h("figcaption.muted", { text: "where the model looks now (red: its input gradients)" })) : null,
      h("div.actions", {}, submitBtn))));

  function setTool(name) {
    tool = name;
    for (const b of tools) b.classList.toggle("selected", b.dataset.tool === name);
  }
  function setCells(on) {
    cellMode = on && !!cells;
    cellsBtn.classList.toggle("selected", cellMode);
    cellsBtn.setAttribute("aria-pressed", String(cellMode));
    stage.classList.toggle("cell-mode", cellMode);
    drawLines();
    draw();
  }
  setTool("relevant");

  function remember() {
    undo.push([rel.slice(), irr.slice()]);
    if (undo.length > 50) undo.shift();
  }
  function doUndo() {
    const last = undo.pop();
    if (last) [rel, irr] = last;
    draw();
  }

  function set(i) {
    if (tool === "relevant") { rel[i] = 1; irr[i] = 0; }
    else if (tool === "irrelevant") { irr[i] = 1; rel[i] = 0; }
    else { rel[i] = 0; irr[i] = 0; }
  }
  // A round brush of diameter `size` native pixels centred on (fx, fy); always covers the pixel under it.
  function dab(fx, fy) {
    const r = size / 2;
    const x0 = Math.max(0, Math.floor(fx - r)), x1 = Math.min(W - 1, Math.floor(fx + r));
    const y0 = Math.max(0, Math.floor(fy - r)), y1 = Math.min(H - 1, Math.floor(fy + r));
    for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) {
      const dx = x + 0.5 - fx, dy = y + 0.5 - fy;
      if (dx * dx + dy * dy <= r * r) set(y * W + x);
    }
    const px = Math.floor(fx), py = Math.floor(fy);
    if (px >= 0 && px < W && py >= 0 && py < H) set(py * W + px);
  }
  function toggleCell(x, y) {
    const id = cells[y * W + x];
    const mask = tool === "relevant" ? rel : tool === "irrelevant" ? irr : null;
    let full = !!mask;
    if (mask) for (let i = 0; i < n; i++) if (cells[i] === id && !mask[i]) { full = false; break; }
    const saved = tool;
    if (full) tool = "erase";
    for (let i = 0; i < n; i++) if (cells[i] === id) set(i);
    tool = saved;
  }

  function draw() {
    keepDraft();
    const d = frame.data;
    const hoverId = cellMode && hover ? cells[hover.y * W + hover.x] : -1;
    for (let i = 0; i < n; i++) {
      const c = rel[i] ? REL : irr[i] ? IRR : null;
      const o = i * 4;
      if (c) { d[o] = c[0]; d[o + 1] = c[1]; d[o + 2] = c[2]; d[o + 3] = c[3]; }
      else if (hoverId >= 0 && cells[i] === hoverId) { d[o] = 255; d[o + 1] = 255; d[o + 2] = 255; d[o + 3] = 70; }
      else d[o + 3] = 0;
    }
    pctx.putImageData(frame, 0, 0);
    const r = rel.reduce((a, b) => a + b, 0), ir = irr.reduce((a, b) => a + b, 0);
    counts.textContent = `relevant ${r} px · irrelevant ${ir ? ir + " px" : "(the rest)"} · of ${n}`;
  }
  function drawLines() {
    lctx.clearRect(0, 0, cw, ch);
    if (!cellMode) return;
    lctx.strokeStyle = "rgba(255,255,255,0.55)";
    lctx.lineWidth = 1;
    strokeBoundaries(lctx, cells, W, H, cw / W);
    lctx.stroke();
  }

  // ---- pointer painting (mouse, pen and touch)
  let last = null;
  paint.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    const p = pixelAt(e, paint, W, H);
    remember();
    if (cellMode) { toggleCell(p.x, p.y); draw(); return; }
    paint.setPointerCapture(e.pointerId);
    last = p;
    dab(p.fx, p.fy);
    draw();
  });
  paint.addEventListener("pointermove", (e) => {
    const p = pixelAt(e, paint, W, H);
    moveCursor(e, p);
    if (!last || cellMode) return;
    const steps = Math.ceil(Math.hypot(p.fx - last.fx, p.fy - last.fy) / Math.max(0.5, size / 3));
    for (let s = 1; s <= steps; s++) dab(last.fx + ((p.fx - last.fx) * s) / steps, last.fy + ((p.fy - last.fy) * s) / steps);
    last = p;
    draw();
  });
  const end = () => { last = null; };
  paint.addEventListener("pointerup", end);
  paint.addEventListener("pointercancel", end);
  paint.addEventListener("pointerleave", () => { cursor.hidden = true; hover = null; if (cellMode) draw(); });

  function moveCursor(e, p) {
    if (cellMode) {
      cursor.hidden = true;
      if (!hover || hover.x !== p.x || hover.y !== p.y) { hover = p; draw(); }
      return;
    }
    const rect = stage.getBoundingClientRect(), d = (size * cw) / W;
    cursor.hidden = false;
    Object.assign(cursor.style, { width: d + "px", height: d + "px",
      left: e.clientX - rect.left - d / 2 + "px", top: e.clientY - rect.top - d / 2 + "px" });
    cursor.className = "brush-cursor " + tool;
  }

  async function send() {
    if (!rel.some((x) => x) &&
        !window.confirm("Nothing is marked relevant. Submit an empty relevant mask (no pixel of this item matters)?")) return;
    const answer = { relevant: { shape: [H, W], bits: packBits(rel) } };
    if (irr.some((x) => x)) answer.irrelevant = { shape: [H, W], bits: packBits(irr) };
    submitBtn.disabled = true;
    await api.submit(answer);
    submitBtn.disabled = false;
  }

  draw();
  return {
    keydown(e) {
      if (typing(e)) return false;
      if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z") { doUndo(); return true; }
      if (e.key === "Enter" && !e.target.closest?.("button")) { send(); return true; }
      if (modified(e)) return false;
      const k = e.key.toLowerCase();
      if (k === "1") setTool("relevant");
      else if (k === "2") setTool("irrelevant");
      else if (k === "3" || k === "e") setTool("erase");
      else if (k === "c" && cells) setCells(!cellMode);
      else if (k === "[" || k === "]") {
        slider.value = String(Math.min(maxSize, Math.max(1, size + (k === "]" ? 1 : -1))));
        slider.dispatchEvent(new Event("input"));
      } else return false;
      return true;
    },
  };
}
