// CAIPI's `correct_explanation` question: the model's explanation (its top components); the person marks
// the ones that are wrongly relevant, or says it is right for the right reasons.
import { h, zoomed, decodeMap, hiDpiCanvas, pixelAt, strokeBoundaries, modified, typing } from "/static/kit.js";

export function render(root, q, api) {
  const v = q.view;
  const ids = v.components;
  const marked = new Set(Array.isArray(q.answer) ? q.answer : api.draft.get() || []);
  const redraws = [];
  const nameOf = (id) => { const w = v.words?.find((x) => x.id === id); return w ? `“${w.word}”` : `#${id}`; };
  const redraw = () => redraws.forEach((f) => f());

  const toggle = (id) => {
    marked.has(id) ? marked.delete(id) : marked.add(id);
    api.draft.set([...marked]);
    redraw();
  };
  const chips = ids.map((id, j) => {
    const word = v.words?.[j]?.word;
    return h(word !== undefined ? "button.word" : "button.component", { type: "button", "data-component": String(id),
      "aria-pressed": "false", onclick: () => toggle(id) }, word !== undefined ? word : `#${id}`);
  });
  redraws.push(() => chips.forEach((b) => {
    const on = marked.has(+b.dataset.component);
    b.classList.toggle("selected", on);
    b.setAttribute("aria-pressed", String(on));
  }));

  const picture = v.regions && v.item?.image ? imageRegions(v, marked, toggle, redraws) : null;
  const text = v.item?.text ? highlightedText(v, marked, toggle, redraws) : null;
  const submitBtn = h("button.submit.primary", { type: "button", onclick: () => send([...marked]) },
    "The marked parts are wrongly relevant");
  const rightBtn = h("button.right-reasons.good-choice", { type: "button", onclick: () => send([]) },
    "✓ Right for the right reasons");
  const hint = h("p.muted.hint");
  redraws.push(() => {
    submitBtn.disabled = marked.size === 0;
    hint.textContent = marked.size ? `${marked.size} marked as wrongly relevant: ${ids.filter((c) => marked.has(c)).map(nameOf).join(", ")}`
      : "Nothing marked: if every highlighted part really matters, the model is right for the right reasons.";
  });

  root.append(h("div.correct-view" + (picture ? "" : ".no-image"), {},
    picture && h("div.paint-col", {}, picture),
    h("div.correct-side", {},
      h("h2", {}, "The model predicts ", h("strong.tag", { text: v.prediction }), " because of these parts"),
      text,
      h("p", { text: picture ? "Click a numbered region (or its button) if it should NOT matter for the label."
        : "Click a word if it should NOT matter for the label." }),
      h("div.chips", {}, ...chips),
      hint,
      h("div.actions", {}, submitBtn, rightBtn))));
  redraw();

  let sending = false;
  async function send(answer) {
    if (sending) return;
    sending = true;
    submitBtn.disabled = rightBtn.disabled = true;
    await api.submit(answer);
    sending = false;
    rightBtn.disabled = false;
    redraw();
  }

  return {
    keydown(e) {
      if (modified(e) || typing(e) || e.target.closest?.("button")) return false;
      if (e.key === "Enter" && marked.size) { send([...marked]); return true; }
      return false;
    },
  };
}

/** The image with each region outlined and numbered; clicking a region toggles it. */
function imageRegions(v, marked, toggle, redraws) {
  const { width: W, height: H } = v.regions;
  const regions = decodeMap(v.regions);
  const { w: cw, h: ch, zoom } = zoomed(W, H, 420);
  const z = cw / W;
  const [canvas, ctx] = hiDpiCanvas("regions", cw, ch);
  const idOf = (x, y) => { const r = regions[y * W + x]; return r ? v.components[r - 1] : null; };

  // padded copy: region edges on the image's border are drawn too
  const pad = new Uint8Array((W + 2) * (H + 2));
  for (let y = 0; y < H; y++) pad.set(regions.subarray(y * W, (y + 1) * W), (y + 1) * (W + 2) + 1);
  const centres = v.components.map((_, j) => centre(regions, W, H, j + 1));
  let hover = null;

  function draw() {
    ctx.clearRect(0, 0, cw, ch);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const id = idOf(x, y);
      if (id === null) continue;
      if (marked.has(id)) ctx.fillStyle = "rgba(220,38,38,0.5)";
      else if (id === hover) ctx.fillStyle = "rgba(255,255,255,0.28)";
      else continue;
      ctx.fillRect(x * z, y * z, z, z);
    }
    ctx.save();
    ctx.translate(-z, -z);
    strokeBoundaries(ctx, pad, W + 2, H + 2, z, (a, b) => a !== b);
    ctx.lineWidth = 4;
    ctx.strokeStyle = "rgba(0,0,0,0.75)";
    ctx.stroke();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#facc15";
    ctx.stroke();
    ctx.restore();
    ctx.font = "600 13px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    v.components.forEach((id, j) => {
      const c = centres[j];
      if (!c) return;
      const x = c[0] * z, y = c[1] * z, label = String(id);
      const w = Math.max(20, ctx.measureText(label).width + 10);
      ctx.fillStyle = marked.has(id) ? "#b91c1c" : "rgba(17,24,39,0.85)";
      ctx.strokeStyle = marked.has(id) ? "#fecaca" : "#facc15";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.roundRect(x - w / 2, y - 10, w, 20, 10);
      ctx.fill();
      ctx.stroke();
      ctx.fillStyle = "#fff";
      ctx.fillText(label, x, y + 0.5);
    });
  }
  redraws.push(draw);

  canvas.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    const p = pixelAt(e, canvas, W, H);
    const id = idOf(p.x, p.y);
    if (id !== null) { e.preventDefault(); toggle(id); }
  });
  canvas.addEventListener("pointermove", (e) => {
    const p = pixelAt(e, canvas, W, H);
    const id = idOf(p.x, p.y);
    canvas.style.cursor = id === null ? "default" : "pointer";
    if (id !== hover) { hover = id; draw(); }
  });
  canvas.addEventListener("pointerleave", () => { hover = null; draw(); });

  return h("div.paint-stage", { style: { width: cw + "px", height: ch + "px" } },
    h(zoom >= 1 ? "img.pixelated" : "img.fitted", { src: v.item.image.src, width: cw, height: ch, alt: "the item", draggable: "false" }), canvas);
}

/** Where region r's number goes: its centroid when that lies inside it, else its pixel nearest the centroid. */
function centre(regions, W, H, r) {
  let sx = 0, sy = 0, k = 0;
  for (let i = 0; i < regions.length; i++) if (regions[i] === r) { sx += i % W + 0.5; sy += ((i / W) | 0) + 0.5; k++; }
  if (!k) return null;
  const cx = sx / k, cy = sy / k;
  if (regions[Math.floor(cy) * W + Math.floor(cx)] === r) return [cx, cy];
  let best = null, bd = Infinity;
  for (let i = 0; i < regions.length; i++) {
    if (regions[i] !== r) continue;
    const x = i % W + 0.5, y = ((i / W) | 0) + 0.5, d = (x - cx) ** 2 + (y - cy) ** 2;
    if (d < bd) { bd = d; best = [x, y]; }
  }
  return best;
}

/** The item's text with the shown words highlighted (marked ones struck through in red). */
function highlightedText(v, marked, toggle, redraws) {
  const words = (v.words || []).filter((w) => w.word && w.word.trim());
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const byWord = new Map(words.map((w) => [w.word.toLowerCase(), w.id]));
  const re = words.length ? new RegExp(`(?<![\\p{L}\\p{N}])(${words.map((w) => esc(w.word)).sort((a, b) => b.length - a.length).join("|")})(?![\\p{L}\\p{N}])`, "giu") : null;
  const spans = [];
  const paragraphs = v.item.text.map((t) => {
    const p = h("p");
    let at = 0;
    for (const m of re ? t.matchAll(re) : []) {
      p.append(t.slice(at, m.index));
      const id = byWord.get(m[0].toLowerCase());
      const s = h("mark.hl", { "data-component": String(id), onclick: () => toggle(id), title: "click to mark / unmark" }, m[0]);
      spans.push(s);
      p.append(s);
      at = m.index + m[0].length;
    }
    p.append(t.slice(at));
    return p;
  });
  redraws.push(() => spans.forEach((s) => s.classList.toggle("selected", marked.has(+s.dataset.component))));
  return h("div.item.item-text", {}, ...paragraphs);
}
