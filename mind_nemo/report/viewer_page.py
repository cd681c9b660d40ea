"""The viewer's page: its CSS and JavaScript, inline, so ``viewer.html`` is one offline file.

The script reads the data from a ``<script type="application/json">`` block and builds every
element with ``textContent``: no model output is ever parsed as HTML, so a conversation holding
``<script>`` or ``</script>`` shows as text. Only one page of contexts is in the DOM at a time,
so 10,000 conversations filter and page instantly. Element ids and ``data-*`` attributes are the
contract the browser test reads (``#shown``, ``#total``, ``button[data-verdict]`` ...).
"""

from __future__ import annotations

CSS = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#f6f6f4}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:8px 16px;
z-index:1}
h1{font-size:18px;margin:0 0 6px}
.bar{display:flex;flex-wrap:wrap;gap:4px;align-items:center;margin:3px 0}
.bar span.label{font-weight:600;margin-right:4px;min-width:60px}
button{border:1px solid #aaa;background:#fafafa;border-radius:12px;padding:2px 10px;cursor:pointer;
font-size:12px}
button.on{background:#2d5fa8;color:#fff;border-color:#2d5fa8}
input[type=search]{width:320px;padding:3px 6px}
#counts{font-size:13px;color:#444}
main{padding:10px 16px}
.context{display:grid;grid-template-columns:minmax(260px,1fr) 2fr;gap:12px;background:#fff;
border:1px solid #ddd;border-radius:6px;margin-bottom:14px;padding:10px}
.raw{white-space:pre-wrap;font-size:13px;background:#fbfbf8;border-right:1px solid #eee;
padding-right:10px;max-height:640px;overflow:auto}
.raw h3,.conv h4{margin:0 0 6px;font-size:13px}
.conv{border:1px solid #e3e3e3;border-radius:5px;margin-bottom:8px;padding:6px 8px}
.conv.kept{border-left:5px solid #3a9a4a}.conv.rejected{border-left:5px solid #c0392b}
.conv.unfiltered{border-left:5px solid #999}
.badge{display:inline-block;border-radius:8px;padding:0 6px;font-size:11px;margin-left:6px;
color:#fff}
.badge.kept{background:#3a9a4a}.badge.rejected{background:#c0392b}.badge.unfiltered{background:#888}
.meta{color:#666;font-size:11px;margin-left:6px}
.turn{white-space:pre-wrap;font-size:13px;padding:3px 6px;margin:2px 0;border-radius:4px}
.turn b{margin-right:4px}
.preamble{white-space:pre-wrap;font-size:12px;color:#777;font-style:italic;margin:2px 0}
.text{white-space:pre-wrap;font-size:13px}
.s0{background:#e8f0fe}.s1{background:#fdf0e2}.s2{background:#e6f5e9}.s3{background:#f6e8f5}
.s4{background:#fff8d6}.s5{background:#e4f4f6}.s6{background:#f1e9e1}.s7{background:#ececec}
#pager{margin:8px 0}
.empty{color:#777;padding:20px}
"""

SCRIPT = r"""
(function(){
const D = JSON.parse(document.getElementById('viewer-data').textContent);
const PAGE = D.page_size;
const state = {style: null, verdict: null, reason: null, q: '', page: 0};
const hay = new Array(D.convs.length);
function el(tag, cls, text){ const e = document.createElement(tag);
  if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
function haystack(i){ if (hay[i] === undefined){ const c = D.convs[i];
  hay[i] = [c.p, c.x].concat(c.u.map(t => c.n[t[0]] + ': ' + t[1])).join('\n').toLowerCase(); }
  return hay[i]; }
const ctxHay = new Array(D.contexts.length);
function contextHaystack(ci){
  if (ctxHay[ci] === undefined) ctxHay[ci] = D.contexts[ci].text.toLowerCase();
  return ctxHay[ci]; }
function matches(i){ const c = D.convs[i];
  if (state.style !== null && c.s !== state.style) return false;
  if (state.verdict !== null && c.v !== state.verdict) return false;
  if (state.reason !== null && c.r !== state.reason) return false;
  if (state.q && haystack(i).indexOf(state.q) < 0 && contextHaystack(c.c).indexOf(state.q) < 0)
    return false;
  return true; }
function chips(id, name, values, key){ const bar = document.getElementById(id);
  bar.appendChild(el('span', 'label', name));
  for (const v of [null].concat(values)){
    const b = el('button', v === null ? 'on' : '', v === null ? 'all' : (v || '(none)'));
    b.dataset[key] = v === null ? '*' : v;
    b.addEventListener('click', () => { state[key] = v; state.page = 0;
      for (const o of bar.querySelectorAll('button')) o.classList.toggle('on', o === b);
      render(); });
    bar.appendChild(b); } }
function conversation(c){ const box = el('div', 'conv ' + c.v); box.dataset.style = c.s;
  box.dataset.verdict = c.v; const h = el('h4', '', c.s);
  h.appendChild(el('span', 'badge ' + c.v, c.v + (c.r ? ': ' + c.r : '')));
  h.appendChild(el('span', 'meta', c.t + ' tokens, ' + c.u.length + ' turns'));
  box.appendChild(h);
  if (c.p) box.appendChild(el('div', 'preamble', c.p));
  if (c.u.length){ for (const [who, said] of c.u){
      const t = el('div', 'turn s' + (who % 8)); t.appendChild(el('b', '', c.n[who] + ':'));
      t.appendChild(document.createTextNode(said)); box.appendChild(t); } }
  else box.appendChild(el('div', 'text', c.x));
  return box; }
function render(){
  const shown = []; const byContext = new Map();
  for (let i = 0; i < D.convs.length; i++){ if (!matches(i)) continue; shown.push(i);
    const c = D.convs[i].c; if (!byContext.has(c)) byContext.set(c, []); byContext.get(c).push(i); }
  const contexts = Array.from(byContext.keys()).sort((a, b) => a - b);
  const pages = Math.max(1, Math.ceil(contexts.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  document.getElementById('shown').textContent = shown.length;
  document.getElementById('shown-contexts').textContent = contexts.length;
  document.getElementById('page').textContent = (state.page + 1) + ' / ' + pages;
  const main = document.getElementById('list'); main.replaceChildren();
  if (!contexts.length) main.appendChild(el('div', 'empty', 'No conversation matches.'));
  for (const ci of contexts.slice(state.page * PAGE, (state.page + 1) * PAGE)){
    const ctx = D.contexts[ci]; const row = el('section', 'context'); row.dataset.context = ci;
    const raw = el('div', 'raw'); raw.appendChild(el('h3', '', ctx.doc + ' #' + ctx.index));
    raw.appendChild(document.createTextNode(ctx.text)); row.appendChild(raw);
    const convs = el('div', 'convs');
    for (const i of byContext.get(ci)) convs.appendChild(conversation(D.convs[i]));
    row.appendChild(convs); main.appendChild(row); } }
document.getElementById('total').textContent = D.convs.length;
document.getElementById('total-contexts').textContent = D.contexts.length;
document.getElementById('run').textContent = D.run;
chips('styles', 'style', D.styles, 'style');
chips('verdicts', 'verdict', D.verdicts, 'verdict');
chips('reasons', 'reason', D.reasons, 'reason');
let timer = null;
document.getElementById('search').addEventListener('input', (e) => { clearTimeout(timer);
  timer = setTimeout(() => { state.q = e.target.value.toLowerCase(); state.page = 0; render(); },
    120); });
document.getElementById('prev').addEventListener('click', () => {
  if (state.page > 0){ state.page--; render(); window.scrollTo(0, 0); } });
document.getElementById('next').addEventListener('click', () => { state.page++; render();
  window.scrollTo(0, 0); });
render();
document.body.dataset.ready = '1';
})();
"""

BODY = """
<header>
<h1>mind_nemo data viewer <span class="meta" id="run"></span></h1>
<div class="bar" id="styles"></div>
<div class="bar" id="verdicts"></div>
<div class="bar" id="reasons"></div>
<div class="bar"><span class="label">search</span>
<input type="search" id="search" placeholder="text in a conversation or its context">
<span id="counts"><b id="shown"></b> of <span id="total"></span> conversations shown, in
<b id="shown-contexts"></b> of <span id="total-contexts"></span> contexts (SAMPLE_NOTE)</span>
</div>
<div id="pager"><button id="prev">previous</button> page <span id="page"></span>
<button id="next">next</button></div>
</header>
<main id="list"></main>
"""
