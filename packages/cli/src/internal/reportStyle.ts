/** The report's stylesheet (inline in the page). */
export const STYLE = String.raw`
:root{--bg:#f4f6f9;--card:#fff;--ink:#1d2433;--muted:#6b7385;--line:#e3e7ee;--accent:#2563eb;--fail:#e5484d;
--prune:#d97706;--best:#f5a524;--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;background:var(--bg);color:var(--ink);overflow-wrap:anywhere}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
h1{font-size:22px;margin:2px 0 4px}h2{font-size:14px;margin:0 0 10px;text-transform:uppercase;letter-spacing:.06em;color:#4a5366}
h3{font-size:12px;margin:14px 0 6px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted)}
.muted{color:var(--muted)}
button{font:inherit;font-size:13px;border:1px solid var(--line);background:#fff;border-radius:6px;padding:4px 10px;cursor:pointer;color:var(--ink)}
button:hover:not(:disabled){border-color:var(--accent);color:var(--accent)}button:disabled{opacity:.5;cursor:default}
header{display:flex;gap:24px;justify-content:space-between;align-items:flex-end;padding:20px 24px 16px;background:linear-gradient(180deg,#1d2433,#283247);color:#eef1f6}
header .muted{color:#a8b1c4}header a{color:#9cc2ff}
.brand{font-size:12px;letter-spacing:.12em;text-transform:uppercase;color:#f5a524;font-weight:600}
.objective{margin:0 0 10px;color:#cdd4e1;max-width:80ch}
.analysis{margin:-4px 0 10px;color:#cdd4e1;max-width:80ch;font-size:13px}
.damage{margin:-4px 0 10px;color:#fecaca;max-width:100ch;font-size:13px}
.chips{display:flex;flex-wrap:wrap;gap:6px}
.chip{display:inline-block;border-radius:999px;padding:2px 9px;font-size:12px;background:#eef2f8;color:var(--ink);border:1px solid var(--line)}
header .chip{background:rgba(255,255,255,.08);border-color:rgba(255,255,255,.14);color:#eef1f6}
.summary{display:flex;gap:20px;align-items:flex-end;flex-shrink:0}
.best-score{text-align:right}.best-score .big{font-size:34px;font-weight:700;line-height:1.1;color:#fff}
.counts{display:grid;grid-auto-flow:column;gap:2px 14px;text-align:center}
.counts b{display:block;font-size:18px}.counts span{font-size:11px;color:#a8b1c4;white-space:nowrap}
.counts .fail b{color:#ff8a8d}.counts .prune b{color:#fbbf24}.counts .cancel b{color:#c3c9d5}
main{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr) 420px;grid-template-rows:600px auto;gap:16px;padding:16px 24px 32px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.tree-card{grid-column:1/3;grid-row:1;display:flex;flex-direction:column}
.details{grid-column:3;grid-row:1/3;contain:size;overflow:auto}
.wide{grid-column:1/-1}.insights-card{grid-column:2/-1}
@media (max-width:1100px){main{grid-template-columns:minmax(0,1fr);grid-template-rows:none}
.tree-card,.details,.wide,.insights-card{grid-column:1;grid-row:auto}.tree-card{height:560px}.details{contain:none;max-height:none}}
.card-head{display:flex;justify-content:space-between;align-items:center}.card-head h2{margin:0}.tools{display:flex;gap:6px}
.tree-wrap{position:relative;flex:1;min-height:0;margin-top:8px;border:1px solid var(--line);border-radius:8px;overflow:hidden;
background:#fbfcfe radial-gradient(#e6eaf1 1px,transparent 1px) 0 0/18px 18px}
svg.tree{width:100%;height:100%;display:block;cursor:grab;user-select:none;touch-action:none}
svg.tree.dragging{cursor:grabbing}
.edges{fill:none;stroke:#b9c2d0;stroke-width:1.2;vector-effect:non-scaling-stroke}
.radial .edges{stroke:#d3d9e2;stroke-width:.8}
.root{fill:#1d2433}
.node{stroke:#1d2433;stroke-opacity:.45;stroke-width:1;cursor:pointer;vector-effect:non-scaling-stroke}
.node:hover{stroke-opacity:1;stroke-width:2.5}
.s-Failed{fill:var(--fail);stroke:#8f1d20;stroke-opacity:1}
.s-Pruned{fill:#fff4dc;stroke:var(--prune);stroke-opacity:1;stroke-dasharray:3 2;stroke-width:1.5}
.s-Cancelled{fill:#eef0f4;stroke:#98a2b3;stroke-opacity:1;stroke-dasharray:2 2}
.s-Interrupted{fill:#fff;stroke:var(--accent);stroke-opacity:1;stroke-width:1.5;stroke-dasharray:2 2}
.s-Proposed,.s-Queued,.s-Running{fill:#fff;stroke:var(--accent);stroke-opacity:1;stroke-width:1.5}
.best-ring{fill:none;stroke:var(--best);stroke-width:4;vector-effect:non-scaling-stroke;pointer-events:none}
.sel-ring{fill:none;stroke:var(--accent);stroke-width:2.5;vector-effect:non-scaling-stroke;pointer-events:none}
.sel-path{fill:none;stroke:var(--accent);stroke-opacity:.55;stroke-width:3;vector-effect:non-scaling-stroke;pointer-events:none}
.labels text{font-size:10px;fill:#4a5366;text-anchor:middle;pointer-events:none;paint-order:stroke;stroke:#fbfcfe;stroke-width:3px}
.tip{position:absolute;pointer-events:none;background:#1d2433;color:#fff;font-size:12px;padding:4px 8px;border-radius:6px;white-space:nowrap;box-shadow:0 4px 12px rgba(0,0,0,.2)}
.legend{display:flex;flex-wrap:wrap;gap:14px;align-items:center;font-size:12px;margin-top:10px;color:#4a5366}
.legend .scale{display:inline-flex;gap:6px;align-items:center}.legend .scale i{display:inline-block;width:120px;height:10px;border-radius:5px}
.legend .dot{display:inline-block;width:11px;height:11px;border-radius:50%;margin-right:5px;vertical-align:-1px;border:1.5px solid}
.dot.best{border:3px solid var(--best);background:#fde725}.dot.failed{background:var(--fail);border-color:#8f1d20}
.dot.pruned{background:#fff4dc;border:1.5px dashed var(--prune)}.dot.cancelled{background:#eef0f4;border:1.5px dashed #98a2b3}
.dot.pending{background:#fff;border-color:var(--accent)}.legend .hint{margin-left:auto}
.chart{width:100%;height:auto;display:block}
.chart .grid{stroke:#edf0f5}.chart .axis{stroke:#aab3c2}
.chart .tick{font-size:11px;fill:var(--muted)}.chart .tick.y{text-anchor:end}.chart .tick.x{text-anchor:middle}
.chart .axis-label{font-size:12px;fill:#4a5366;text-anchor:middle}
.chart .best-line{fill:none;stroke:var(--best);stroke-width:2.2;pointer-events:none}
.chart .target{stroke:#12a150;stroke-dasharray:5 4}.chart .target-label{font-size:10px;fill:#12a150;text-anchor:end}
.chart .fail-ticks{stroke:var(--fail);stroke-width:1.5}
.chart .pt{stroke:#1d2433;stroke-opacity:.5;cursor:pointer}.chart .pt:hover{stroke-opacity:1;stroke-width:2}
.chart .empty{text-anchor:middle;fill:var(--muted)}
.chart .sel{stroke:var(--accent);stroke-width:2.5;stroke-opacity:1}
.budget-row{display:grid;grid-template-columns:100px 1fr;gap:2px 10px;align-items:center;margin-bottom:10px}
.budget-label{font-weight:600}.budget-value{text-align:right;font-variant-numeric:tabular-nums}
.bar{grid-column:1/-1;height:8px;border-radius:4px;background:#edf0f5;overflow:hidden}.bar span{display:block;height:100%;background:var(--accent)}
.bar.high span{background:#f59e0b}.bar.full span{background:var(--fail)}.bar.none{background:repeating-linear-gradient(90deg,#edf0f5 0 6px,transparent 6px 10px)}
.insights{margin:0;padding-left:20px}.insights li{margin-bottom:10px}.insights p{margin:0 0 4px}
.evidence{display:flex;flex-wrap:wrap;gap:4px;align-items:center;font-size:12px}
a.chip{background:#eaf1ff;border-color:#cfdcfb;font-family:var(--mono)}.chip.missing{font-family:var(--mono);color:var(--muted)}
.best-bar{display:flex;justify-content:space-between;align-items:center;margin-bottom:8px}
pre{font:12px/1.5 var(--mono);background:#f7f8fb;border:1px solid var(--line);border-radius:8px;padding:10px 12px;overflow:auto;margin:0;white-space:pre-wrap;word-break:break-word}
#best-json{max-height:420px}
.d-head{display:flex;align-items:center;gap:8px;flex-wrap:wrap}.d-head h2{margin:0;font-family:var(--mono);text-transform:none;letter-spacing:0;font-size:16px;color:var(--ink)}
.badge{font-size:11px;font-weight:600;border-radius:999px;padding:2px 8px;background:#eef2f8}
.badge.Succeeded{background:#dcfce7;color:#166534}.badge.Failed{background:#fee2e2;color:#991b1b}
.badge.Pruned{background:#fef3c7;color:#92400e}.badge.Cancelled,.badge.Interrupted{background:#eef0f4;color:#475467}
.badge.Running,.badge.Queued,.badge.Proposed{background:#dbeafe;color:#1e40af}.badge.best{background:#fff1c2;color:#8a5a00}
.d-score{margin-left:auto;font-size:22px;font-weight:700}
.kv{display:grid;grid-template-columns:auto 1fr;gap:2px 12px;font-size:13px;margin:8px 0}.kv dt{color:var(--muted)}.kv dd{margin:0;word-break:break-all}
.settings dd{font-family:var(--mono)}.settings .overridden{font-weight:600;background:#fff8e1}.override{margin:6px 0;padding:6px 10px;border-left:3px solid var(--best);background:#fffbeb;border-radius:0 6px 6px 0}
table{border-collapse:collapse;width:100%;font-size:12px}
td,th{padding:3px 6px;border-bottom:1px solid #f0f2f6;text-align:left;vertical-align:top;word-break:break-word}
th{color:var(--muted);font-weight:500}td.path{font-family:var(--mono);color:#4a5366}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.changed td{background:#fff8e1}tr.added td{background:#e9f9ee}tr.removed td{background:#fdecec}
tr.changed td.new,tr.added td.new{font-weight:600}td.old{color:var(--muted);text-decoration:line-through}
tr.primary td{font-weight:700}
.rationale{margin:0;padding:8px 10px;border-left:3px solid var(--best);background:#fffbeb;border-radius:0 6px 6px 0;white-space:pre-wrap}
.failure{border:1px solid #f5c2c3;background:#fff5f5;border-radius:8px;padding:8px 10px}
.failure b{color:#991b1b}
.logs{max-height:220px;background:#111827;color:#e5e7eb;border-color:#111827}
.curve{width:100%;height:auto;display:block;margin-bottom:6px}.curve text{font-size:9px;fill:var(--muted)}
.curve .ln{fill:none;stroke-width:1.6}.curve .ax{stroke:#d5dae3}
summary{cursor:pointer;color:var(--muted);font-size:12px;margin-top:4px}
`
